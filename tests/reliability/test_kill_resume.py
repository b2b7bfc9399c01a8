"""kill -9 in the middle of a command: no partial artifact under the final name, the previous output intact, and
training resumed with `--resume` ends bit-identical to an uninterrupted run.

(`finetune` is covered by tests/cli/test_finetune.py::test_kill_during_finetune_then_resume_is_bit_identical and
the loop itself by tests/train/test_loop.py::test_kill_then_resume_is_bit_identical.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TINY_BACKBONE, TINY_TEACHER_BACKBONE, train_tiny
from tests.reliability import leftovers
from vlkd_cli.artifacts.atomic import TEMP_MARK
from vlkd_cli.artifacts.regions import Regions

ROOT = Path(__file__).resolve().parents[2]
SLOW = ("--batch-size", 1)  # one image per batch: the killed runs last long enough to be killed midway
ENV = {**os.environ, "VLKD_PROGRESS": "0", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _vlkd(*args: object) -> list[str]:
    return [sys.executable, "-m", "vlkd_cli", *(str(a) for a in args)]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, check=False)


def _kill_when(command: list[str], ready: Callable[[], bool], timeout: float = 120.0) -> None:
    """Start `command`, SIGKILL it as soon as `ready()` holds; fail if it ends first."""
    victim = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    try:
        while not ready():
            if victim.poll() is not None:
                why = victim.stderr.read()
                pytest.fail(f"the run ended (code {victim.returncode}) before it could be killed: {why}")
            assert time.time() < deadline, "the kill point was never reached"
            time.sleep(0.02)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        victim.stderr.close()
    assert victim.returncode == -signal.SIGKILL


def _extract_args(demo_data: Path, proposals: Path, out: Path, *extra: object) -> list[str]:
    """The options of the session fixture `demo_regions`."""
    return _vlkd("extract-regions", "--images", demo_data / "images", "--annotations", demo_data / "instances.json",
                 "--student-backbone", TINY_BACKBONE, "--teacher-backbone", TINY_TEACHER_BACKBONE, "--image-size", 64,
                 "--device", "cpu", "--proposals", proposals, "--out", out, *extra)  # fmt: skip


def test_kill_during_extract_regions_keeps_the_old_output_then_a_rerun_completes(demo_data, demo_proposals,
                                                                                  demo_regions, tmp_path):  # fmt: skip
    out = tmp_path / "regions.safetensors"
    shutil.copy(demo_regions, out)  # the output of an earlier run
    before = out.read_bytes()

    def rows_written() -> bool:  # features of the first images have reached the temp files
        return any(f.stat().st_size > 0 for f in tmp_path.glob(f".{out.name}{TEMP_MARK}*/*") if f.is_file())

    _kill_when(_extract_args(demo_data, demo_proposals, out, *SLOW), rows_written)
    assert out.read_bytes() == before  # the old output, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [out.name]
    assert len(leftovers(tmp_path)) == 1  # the killed writer's hidden temp (it could not remove it)
    # A fresh target: a killed first run leaves nothing under the final name.
    fresh = tmp_path / "fresh" / "regions.safetensors"
    _kill_when(_extract_args(demo_data, demo_proposals, fresh, *SLOW),
               lambda: any(fresh.parent.glob(f".{fresh.name}{TEMP_MARK}*")))  # fmt: skip
    assert not fresh.exists()
    # The rerun (the fixture's own options) completes, sweeps the dead run's temp, and gives the fixture's content.
    done = _run(_extract_args(demo_data, demo_proposals, out))
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir() if TEMP_MARK in p.name] == []
    assert len(list(fresh.parent.glob(f".{fresh.name}{TEMP_MARK}*"))) == 1  # no rerun there: still to delete
    new, reference = Regions(out), Regions(demo_regions)
    assert new.boxes_sha256 == reference.boxes_sha256  # same images, same boxes (the alignment key)
    for n in range(reference.num_images):  # same features, up to the thread count's float rounding
        for side in ("student_features", "teacher_features"):
            a, b = getattr(new.image(n), side).astype(np.float32), getattr(reference.image(n), side).astype(np.float32)
            np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-3)


@pytest.fixture(scope="module")
def caption_teacher(demo_data, demo_regions, tmp_path_factory) -> Path:
    return train_tiny(demo_data, demo_regions, tmp_path_factory.mktemp("kill-teacher") / "teacher", "caption",
                      "--features", "teacher")


def test_kill_during_distill_then_resume_is_bit_identical(caption_teacher, demo_data, demo_regions, tmp_path):
    args = _vlkd("distill", "--teacher", caption_teacher, "--student", "tiny", "--regions", demo_regions, "--task",
                 "caption", "--annotations", demo_data / "karpathy.json", "--split", "train", "--batch-size", 8,
                 "--device", "cpu", "--queue-size", 32, "--max-steps", 12, "--save-every", 4, "--lr", 1e-3,
                 "--log-every", 1)  # fmt: skip
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = _run([*args, "--out", str(whole)])
    assert done.returncode == 0, done.stderr
    _kill_when([*args, "--out", str(killed)], lambda: (killed / "checkpoints" / "step-00000004").is_dir())
    assert not (killed / "model.safetensors").exists() and not (killed / "config.json").exists()
    steps = sorted(p.name for p in (killed / "checkpoints").iterdir() if p.name.startswith("step-"))
    assert steps and steps[-1] < "step-00000012"  # killed before the end: only complete checkpoints count
    resumed = _run([*args, "--out", str(killed), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_file(whole / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The token-NCE queue travels in the checkpoints: the last ones agree too.
    qa = load_file(whole / "checkpoints" / "step-00000012" / "checkpoint.safetensors")
    qb = load_file(killed / "checkpoints" / "step-00000012" / "checkpoint.safetensors")
    assert torch.equal(qa["model.nce.queue.queue"], qb["model.nce.queue.queue"])
    assert leftovers(killed) == []
