"""Run under `torchrun --nproc_per_node 2`: each rank pushes different keys; every rank saves its queue state.

Usage: python -m torch.distributed.run --nproc_per_node 2 -m tests.losses.ddp_queue OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from vlkd_cli.losses import FeatureQueue, TokenNCELoss


def rank_keys(rank: int, step: int, count: int, dim: int = 2) -> torch.Tensor:
    """Keys that say who pushed them: value = 100·rank + 10·step + row index."""
    base = 100 * rank + 10 * step + torch.arange(count, dtype=torch.float32)
    return base[:, None].repeat(1, dim)  # (count, dim)


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    queue = FeatureQueue(2, 6)
    queue.push(rank_keys(rank, 0, 3 if rank == 0 else 2))  # 5 keys in all
    queue.push(rank_keys(rank, 1, 0 if rank == 0 else 2))  # rank 0 has none: still a collective; wraps
    # TokenNCELoss.update: pending keys of this rank's selected tokens; rank 1 selects no token at all.
    nce = TokenNCELoss(2, 2, queue_size=4)
    mask = torch.tensor([[True, False, True]]) if rank == 0 else torch.zeros(1, 3, dtype=torch.bool)
    teacher = rank_keys(rank, 2, 3)[None]  # (1, 3, 2)
    nce(torch.randn(1, 3, 2), teacher, mask).backward()
    nce.update()
    state = {f"queue.{k}": v for k, v in queue.state_dict().items()}
    state |= {f"nce.{k}": v for k, v in nce.queue.state_dict().items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / f"rank{rank}.safetensors"))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
