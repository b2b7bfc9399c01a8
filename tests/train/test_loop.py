"""The training loop: exact resume after kill -9, 2-process DDP equals one process, run-directory rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.train.toy_task import ToyTask
from vlkd_cli.errors import RunError, UsageError
from vlkd_cli.train.loop import TrainConfig, train
from vlkd_cli.train.optim import lr_factor

ROOT = Path(__file__).resolve().parents[2]


def _run(out: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLKD_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "tests.train.toy_task", str(out), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=check)  # fmt: skip


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _losses(out: Path) -> list[tuple[int, float]]:
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [(e["step"], e["loss"]) for e in lines if "loss" in e]


def test_kill_then_resume_is_bit_identical(tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    _run(whole)
    crashed = _run(resumed, "--crash-at", "7", check=False)
    assert crashed.returncode == -9, crashed.stderr
    assert not (resumed / "model.safetensors").exists()  # no final output from a killed run
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == ["best", "step-00000004", "step-00000006"]
    _run(resumed, "--resume")
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    best = json.loads((whole / "checkpoints" / "best" / "state.json").read_text())
    assert float(a["seen"]) == best["step"]  # buffers travel too; the final model is the best validated one
    assert _losses(whole) == _losses(resumed)


def test_two_process_ddp_equals_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_DROPOUT", "0")  # per-rank dropout masks would differ from one process's
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _run(single)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLKD_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())]
    proc = subprocess.run([*torchrun, "-m", "tests.train.toy_task", str(ddp)], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = _losses(single), _losses(ddp)
    assert [s for s, _ in one] == [s for s, _ in two] and len(one) == 18
    # same global batch → same gradients → same losses, to float tolerance
    assert [loss for _, loss in one] == pytest.approx([loss for _, loss in two], rel=1e-5, abs=1e-6)
    a, b = load_file(single / "model.safetensors"), load_file(ddp / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)
    def evals(out):
        return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if "val/count" in line]

    assert evals(ddp) and all(e["val/count"] == 47 for e in evals(ddp))  # no padded duplicates
    assert [e["val/neg_mse"] for e in evals(ddp)] == pytest.approx([e["val/neg_mse"] for e in evals(single)], rel=1e-4)


def test_non_finite_loss_stops_the_run_with_exit_1(tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_LOSS_SCALE", "nan")
    with pytest.raises(RunError, match="non-finite loss at step 1"):
        train(ToyTask(), TrainConfig(max_steps=3, batch_size=8), out=tmp_path, device=torch.device("cpu"),
              command="toy", run_config={})  # fmt: skip
    assert not (tmp_path / "model.safetensors").exists()


def test_schedule_warms_up_then_decays():
    factors = [lr_factor(s, total_steps=10, warmup_steps=2, schedule="linear") for s in range(10)]
    assert factors[:3] == [0.5, 1.0, 1.0] and factors[-1] == pytest.approx(1 / 8)
    assert lr_factor(6, total_steps=10, warmup_steps=2, schedule="cosine") == pytest.approx(0.5)
    with pytest.raises(UsageError):
        lr_factor(0, total_steps=1, warmup_steps=0, schedule="bogus")
