"""`bench/gpu_check.sh` (the GPU check; it cannot run here): its syntax, its dry run (every command it would run,
no GPU needed) and its clear, fast failure without CUDA."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"


def _run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--python", sys.executable, "--work", str(tmp_path / "work"), *args],
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip


def test_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_dry_run_prints_every_check(tmp_path):
    done = _run("--dry-run", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if line.startswith("+ ")]
    for needle in ("make-demo-data", "train-detector", "extract-regions", "finetune --task caption --model demo-teacher",
                   "distill --teacher", "--bf16", "torch.distributed.run --standalone --nproc_per_node 2",
                   "eval-caption", "--device cpu", "benchmark-latency", "--precision bf16"):  # fmt: skip
        assert any(needle in c for c in commands), needle
    assert sum("--device cuda" in c for c in commands) >= 8
    summary = done.stdout.split("gpu_check summary", 1)[1]
    assert summary.count("SKIP") == 6 and "FAIL" not in summary  # (a) x2, (b), (c), (d) x2
    assert not (tmp_path / "work" / "data").exists()  # nothing ran


def test_a_cpu_rehearsal_runs_every_command_on_the_cpu_without_ddp(tmp_path):
    done = _run("--dry-run", "--device", "cpu", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if line.startswith("+ ")]
    assert commands and not any("cuda" in c or "torch.distributed.run" in c for c in commands)
    assert sum("--device cpu" in c for c in commands) >= 10
    summary = done.stdout.split("gpu_check summary", 1)[1]
    assert "SKIP  (b) DDP 2 processes" in summary and "only 0 GPU" in summary


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_cuda_it_fails_at_once(tmp_path):
    done = _run(tmp_path=tmp_path)
    assert done.returncode == 1 and "no CUDA device" in done.stderr and "needs a GPU" in done.stderr
    assert not (tmp_path / "work").exists()


def test_unknown_argument_is_a_usage_error(tmp_path):
    done = _run("--frobnicate", tmp_path=tmp_path)
    assert done.returncode == 2 and "unknown argument --frobnicate" in done.stderr
