"""torchrun integration: process group set-up, rank-0-only writes, and gathers without pickle.

Under `torchrun` (RANK / WORLD_SIZE / LOCAL_RANK in the environment) training runs data-parallel: gloo on
CPU, NCCL on GPU. Evaluation results are gathered as tensors (JSON bytes for strings), never pickled.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
import torch.distributed as dist


def init_distributed(device: torch.device) -> bool:
    """Initialise the default process group when launched by torchrun; True if distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_tensor(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Gather tensors of possibly different first-dim sizes from every rank (rank order)."""
    if not is_distributed():
        return [tensor]
    size = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(get_world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    return [g[: int(s.item())] for g, s in zip(gathered, sizes)]


def all_gather_json(value: Any, device: torch.device | None = None) -> list[Any]:
    """Gather a JSON-able value from every rank (as UTF-8 bytes in a uint8 tensor)."""
    if not is_distributed():
        return [value]
    data = torch.frombuffer(bytearray(json.dumps(value).encode("utf-8")), dtype=torch.uint8)
    return [json.loads(bytes(t.cpu().tolist()).decode("utf-8")) for t in all_gather_tensor(data.to(device or "cpu"))]


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / get_world_size()
