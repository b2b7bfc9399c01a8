"""Atomic outputs under faults: a disk that fills up during a write (simulated in-process: OSError ENOSPC raised
midway), and the temp a killed writer leaves behind. The previous output stays intact, no temp file is left, the
error is exit 1 naming the output.

(A corrupt image over an existing output is tests/cli/test_cli.py::test_corrupt_image_keeps_existing_output; ENOSPC
in the safetensors writer alone is tests/artifacts/test_artifacts.py::test_disk_full_during_write_keeps_old_file.)
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file

from tests.conftest import TINY_BACKBONE, TINY_TEACHER_BACKBONE, invoke
from tests.reliability import assert_refused, leftovers
from vlkd_cli.artifacts import atomic, writer
from vlkd_cli.artifacts.atomic import TEMP_MARK, sweep_stale_temps, temp_sibling, write_text_atomic


def _no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_on(monkeypatch, owner: object, name: str, when: Callable[[int, tuple], bool]) -> list[int]:
    """Make `owner.name` raise ENOSPC on the calls for which `when(call number from 1, args)` holds."""
    real, calls = getattr(owner, name), [0]

    def patched(*args, **kwargs):
        calls[0] += 1
        if when(calls[0], args):
            _no_space()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, patched)
    return calls


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------- extract-regions


@pytest.fixture()
def four_images(demo_data, demo_proposals, tmp_path) -> tuple[Path, Path]:
    """An instances file and a proposals file of the first four demo images (a short extraction)."""
    data = json.loads((demo_data / "instances.json").read_text())
    keep = {image["id"] for image in data["images"][:4]}
    data["images"] = [i for i in data["images"] if i["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    instances, proposals = tmp_path / "four.json", tmp_path / "proposals.json"
    instances.write_text(json.dumps(data))
    proposals.write_text(json.dumps([p for p in json.loads(demo_proposals.read_text()) if p["image_id"] in keep]))
    return instances, proposals


@pytest.mark.parametrize("where", ["rows", "final-file"])
def test_disk_full_during_extract_regions_keeps_the_old_artifact(where, demo_data, demo_regions, four_images,
                                                                 monkeypatch, tmp_path):  # fmt: skip
    out = tmp_path / "out" / "regions.safetensors"
    out.parent.mkdir()
    shutil.copy(demo_regions, out)
    before = out.read_bytes()
    if where == "rows":  # the third image's rows do not fit: the temp tensors are half written
        calls = _fail_on(monkeypatch, writer.TensorBuilder, "append", lambda n, args: n == 11)
    else:  # every row was written, then the assembled file cannot be flushed to disk
        calls = _fail_on(monkeypatch, atomic, "_fsync_file", lambda n, args: True)
    result = invoke(["extract-regions", "--images", demo_data / "images", "--annotations", four_images[0],
                     "--proposals", four_images[1], "--student-backbone", TINY_BACKBONE, "--teacher-backbone",
                     TINY_TEACHER_BACKBONE, "--image-size", 64, "--batch-size", 1, "--device", "cpu", "--out", out])  # fmt: skip
    assert calls[0] > 0, result.output
    assert_refused(result, 1, f"{out}: No space left on device")
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp left behind


# ------------------------------------------------------------------------------------------------- eval dir


def test_disk_full_while_replacing_an_eval_dir_keeps_the_old_one(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    ids = np.arange(1, 5, dtype=np.int64)
    scores = tmp_path / "scores.safetensors"
    save_file({"scores": rng.normal(size=(4, 4)).astype(np.float32), "image_ids": ids, "text_image_ids": ids},
              str(scores))  # fmt: skip
    out = tmp_path / "eval"
    assert invoke(["eval-retrieval", "--scores", scores, "--out", out]).exit_code == 0
    before = _snapshot(out)
    assert set(before) == {"metrics.json", "predictions.json", "scores.safetensors"}
    _fail_on(monkeypatch, atomic, "_fsync_file", lambda n, args: True)  # scores.safetensors is the last file
    assert_refused(invoke(["eval-retrieval", "--scores", scores, "--folds", 2, "--out", out]), 1,
                   f"{out / 'scores.safetensors'}: No space left on device")  # fmt: skip
    assert _snapshot(out) == before
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------- training


def test_disk_full_during_a_checkpoint_keeps_the_previous_one_and_resume_works(demo_data, demo_regions, monkeypatch,
                                                                               tmp_path):  # fmt: skip
    out = tmp_path / "run"
    args = ["finetune", "--task", "caption", "--model", "tiny", "--regions", demo_regions, "--features", "student",
            "--annotations", demo_data / "karpathy.json", "--split", "train", "--max-steps", 3, "--save-every", 1,
            "--batch-size", 8, "--lr", 1e-3, "--device", "cpu", "--out", out]  # fmt: skip
    _fail_on(monkeypatch, atomic, "_fsync_file", lambda n, args: "step-00000002" in str(args[0]))
    step2 = out / "checkpoints" / "step-00000002"
    assert_refused(invoke(args), 1, f"{step2 / 'checkpoint.safetensors'}: No space left on device")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000001", "tokenizer"]
    assert not (out / "model.safetensors").exists() and leftovers(tmp_path) == []
    monkeypatch.undo()  # space is back: the run continues from step 1
    assert invoke([*args, "--resume"]).exit_code == 0
    whole = tmp_path / "whole"
    assert invoke([*args[:-1], whole]).exit_code == 0
    a, b = load_file(whole / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------- temps of killed writers


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)  # fmt: skip
    return int(child.stdout)


def test_temps_of_dead_writers_are_swept_by_the_next_write(tmp_path):
    target = tmp_path / "metrics.json"
    mine = temp_sibling(target)  # a live writer's (this process)
    prefix = f".{target.name}{TEMP_MARK}"
    dead_file = tmp_path / f"{prefix}{_dead_pid()}@{atomic._host()}-abc123"
    dead_file.write_text("half")
    dead_dir = tmp_path / f"{prefix}{_dead_pid()}@{atomic._host()}-def456"
    (dead_dir / "sub").mkdir(parents=True)
    elsewhere = tmp_path / f"{prefix}{_dead_pid()}@another-host-ghi789"  # its pid means nothing here
    elsewhere.write_text("remote")
    unrelated = tmp_path / f".other.json{TEMP_MARK}{_dead_pid()}@{atomic._host()}-jkl012"
    unrelated.write_text("other target")
    write_text_atomic(target, "{}")
    assert target.read_text() == "{}"
    assert not dead_file.exists() and not dead_dir.exists()
    assert mine.exists() and elsewhere.exists() and unrelated.exists()
    assert sweep_stale_temps(target) == []  # nothing left to sweep


def test_an_output_moved_aside_is_never_swept(tmp_path):
    """Between replace_dir's two renames the old output lives under an aside name: not a temp, never swept."""
    target = tmp_path / "model"
    aside = tmp_path / f".model{atomic.ASIDE_MARK}{_dead_pid()}@{atomic._host()}-x"
    aside.mkdir()
    (aside / "config.json").write_text("{}")
    with atomic.atomic_dir(target) as tmp:
        (tmp / "config.json").write_text('{"new": 1}')
    assert (aside / "config.json").exists() and json.loads((target / "config.json").read_text()) == {"new": 1}
