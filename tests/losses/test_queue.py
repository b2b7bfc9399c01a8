"""FeatureQueue: wrap-around, filled part only, state-dict round trip, detached keys, 2-process DDP gather."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vlkd_cli.losses import FeatureQueue

ROOT = Path(__file__).resolve().parents[2]


def _keys(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)[:, None].repeat(1, 2)  # (M, 2), row value v = [v, v]


def _column(queue: FeatureQueue) -> list[float]:
    return queue.queue[:, 0].tolist()


def test_push_three_then_four_wraps() -> None:
    queue = FeatureQueue(2, 5)
    assert queue.negatives().shape == (0, 2)  # nothing yet: no zero rows posing as negatives
    queue.push(_keys(1, 2, 3))
    assert int(queue.ptr) == 3 and int(queue.filled) == 3
    assert queue.negatives()[:, 0].tolist() == [1, 2, 3]  # before it is full: only the filled rows
    queue.push(_keys(4, 5, 6, 7))
    assert _column(queue) == [6, 7, 3, 4, 5]  # 4, 5 at rows 3, 4; 6, 7 wrapped to rows 0, 1
    assert int(queue.ptr) == 2 and int(queue.filled) == 5
    assert queue.negatives()[:, 0].tolist() == [6, 7, 3, 4, 5]
    assert len(queue) == 5


def test_more_than_capacity_keeps_the_last_k_in_ring_order() -> None:
    queue = FeatureQueue(2, 5)
    queue.push(_keys(1, 2))  # ptr 2
    queue.push(_keys(10, 11, 12, 13, 14, 15, 16))  # 7 > 5: 12..16 survive at rows (2 + 2..6) % 5 = 4, 0, 1, 2, 3
    assert _column(queue) == [13, 14, 15, 16, 12]
    assert int(queue.ptr) == (2 + 7) % 5 and int(queue.filled) == 5
    queue.push(_keys(20))  # the oldest (12, row 4) goes first
    assert _column(queue) == [13, 14, 15, 16, 20]
    assert int(queue.ptr) == 0


def test_empty_push_changes_nothing() -> None:
    queue = FeatureQueue(2, 3)
    queue.push(_keys(1))
    queue.push(torch.zeros(0, 2))
    assert int(queue.ptr) == 1 and int(queue.filled) == 1 and _column(queue) == [1, 0, 0]


def test_keys_are_stored_detached_and_shape_checked() -> None:
    queue = FeatureQueue(2, 3)
    keys = torch.ones(2, 2, requires_grad=True)
    queue.push(keys * 2)
    assert not queue.queue.requires_grad and queue.queue.grad_fn is None
    assert queue.negatives()[:, 0].tolist() == [2, 2]
    with pytest.raises(ValueError):
        queue.push(torch.zeros(2, 3))


def test_state_dict_round_trip_restores_contents_and_pointer() -> None:
    queue = FeatureQueue(2, 4)
    queue.push(_keys(1, 2, 3, 4, 5, 6))
    state = queue.state_dict()
    assert set(state) == {"queue", "ptr", "filled"}
    restored = FeatureQueue(2, 4)
    restored.load_state_dict(state)
    assert torch.equal(restored.queue, queue.queue)
    assert int(restored.ptr) == int(queue.ptr) == 2 and int(restored.filled) == 4
    # the continuation is identical (exact resume)
    queue.push(_keys(7))
    restored.push(_keys(7))
    assert torch.equal(restored.queue, queue.queue) and int(restored.ptr) == int(queue.ptr) == 3


def test_queue_buffers_belong_to_the_parent_state_dict() -> None:
    parent = torch.nn.Module()
    parent.queue = FeatureQueue(2, 3)
    assert {"queue.queue", "queue.ptr", "queue.filled"} <= set(parent.state_dict())


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ddp_all_gathers_keys_so_every_rank_holds_the_same_queue(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(_free_port())]  # fmt: skip
    proc = subprocess.run([*torchrun, "-m", "tests.losses.ddp_queue", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # push 1: rank 0's 0, 1, 2 then rank 1's 100, 101 (rank order); push 2: rank 1's 110, 111 wrap to rows 5, 0
    assert rank0["queue.queue"][:, 0].tolist() == [111, 1, 2, 100, 101, 110]
    assert int(rank0["queue.ptr"]) == 1 and int(rank0["queue.filled"]) == 6
    # TokenNCELoss.update: rank 0's two selected teacher tokens (20, 22), rank 1 selected none
    assert rank0["nce.queue"][:, 0].tolist() == [20, 22, 0, 0]
    assert int(rank0["nce.ptr"]) == 2 and int(rank0["nce.filled"]) == 2
