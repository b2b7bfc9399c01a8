"""Broken artifacts through every reader: truncated safetensors, headers that lie about offsets or sizes, huge header
lengths, non-finite features, and artifacts or model directories of a newer schema. Each is exit 3, one line that
names the file, and the command writes nothing.

(The header checks themselves are unit-tested in tests/artifacts/test_artifacts.py; here they run end to end.)
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from tests.conftest import invoke
from tests.reliability import assert_refused, edit_header, join_safetensors, split_safetensors
from vlkd_cli.artifacts.schema import SCHEMA_VERSIONS


@pytest.fixture(scope="module")
def caption_model(demo_data, demo_regions, tmp_path_factory) -> Path:
    """A tiny caption model on the student features, with one checkpoint."""
    out = tmp_path_factory.mktemp("corrupt-model") / "model"
    result = invoke(["finetune", "--task", "caption", "--model", "tiny", "--regions", demo_regions, "--features",
                     "student", "--annotations", demo_data / "karpathy.json", "--split", "train", "--max-steps", 1,
                     "--save-every", 1, "--batch-size", 8, "--device", "cpu", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _scores_file(path: Path) -> Path:
    rng = np.random.default_rng(0)
    image_ids = np.arange(1, 7, dtype=np.int64)
    save_file({"scores": rng.normal(size=(6, 12)).astype(np.float32), "image_ids": image_ids,
               "text_image_ids": np.repeat(image_ids, 2)}, str(path))  # fmt: skip
    return path


# ------------------------------------------------------------------------------- corrupt safetensors files


def _truncate(raw: bytes) -> bytes:
    return raw[: len(raw) - 100]


def _shift_offsets(raw: bytes) -> bytes:
    """The first tensor claims to start 8 bytes later (its size unchanged): a gap the data does not have."""
    header, data = split_safetensors(raw)
    first = min((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    header[first]["data_offsets"] = [o + 8 for o in header[first]["data_offsets"]]
    return join_safetensors(header, data)


def _lie_about_shape(raw: bytes) -> bytes:
    """A tensor's shape grows by one row while its byte range stays: dtype x shape no longer fits the range."""
    header, data = split_safetensors(raw)
    name = max((k for k in header if k != "__metadata__" and header[k]["shape"]), key=lambda k: header[k]["shape"][0])
    header[name]["shape"][0] += 1
    return join_safetensors(header, data)


def _grow_past_the_end(raw: bytes) -> bytes:
    """A consistent lie: the last tensor grows by a row and its range with it, past the end of the file."""
    header, data = split_safetensors(raw)
    names = [k for k in header if k != "__metadata__" and header[k]["shape"]]
    name = max(names, key=lambda k: header[k]["data_offsets"][1])
    info = header[name]
    row = (info["data_offsets"][1] - info["data_offsets"][0]) // info["shape"][0]
    info["shape"][0] += 1
    info["data_offsets"][1] += row
    return join_safetensors(header, data)


def _huge_header_length(raw: bytes) -> bytes:
    return struct.pack("<Q", 2**64 - 1) + raw[8:]


def _header_past_the_file(raw: bytes) -> bytes:
    return struct.pack("<Q", len(raw)) + raw[8:]  # under the 100 MB cap, but longer than the file


CORRUPTIONS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "truncated": (_truncate, "truncated"),
    "offsets-lie": (_shift_offsets, "corrupt safetensors header"),
    "shape-lies": (_lie_about_shape, "corrupt safetensors header"),
    "size-past-end": (_grow_past_the_end, "truncated"),
    "huge-header-length": (_huge_header_length, "over the 100 MB limit"),
    "header-past-file": (_header_past_the_file, "exceeds the file size"),
}
READERS = ["inspect-regions", "finetune-regions", "inspect-model-dir", "eval-caption-model", "eval-retrieval-scores"]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_safetensors_is_exit_3_in_every_reader(corruption, reader, caption_model, demo_data, demo_regions,
                                                       tmp_path):  # fmt: skip
    corrupt, needle = CORRUPTIONS[corruption]
    out = tmp_path / "out"
    if reader.endswith("regions"):
        victim = tmp_path / "regions.safetensors"
        victim.write_bytes(corrupt(demo_regions.read_bytes()))
        args = (["inspect", victim] if reader.startswith("inspect") else
                ["finetune", "--task", "caption", "--model", "tiny", "--regions", victim, "--annotations",
                 demo_data / "karpathy.json", "--max-steps", 1, "--device", "cpu", "--out", out])  # fmt: skip
    elif reader.endswith(("model-dir", "model")):
        model = tmp_path / "model"
        shutil.copytree(caption_model, model, ignore=shutil.ignore_patterns("checkpoints"))
        victim = model / "model.safetensors"
        victim.write_bytes(corrupt(victim.read_bytes()))
        args = (["inspect", model] if reader.startswith("inspect") else
                ["eval-caption", "--model", model, "--regions", demo_regions, "--annotations",
                 demo_data / "karpathy.json", "--no-meteor", "--device", "cpu", "--out", out])  # fmt: skip
    else:
        victim = _scores_file(tmp_path / "scores.safetensors")
        victim.write_bytes(corrupt(victim.read_bytes()))
        args = ["eval-retrieval", "--scores", victim, "--out", out]
    assert_refused(invoke(args), 3, str(victim), needle)
    assert not out.exists()


# ------------------------------------------------------------------------------------------- non-finite values


def _regions_with(source: Path, path: Path, tensor: str, image: int, value: float) -> Path:
    """A copy of a regions artifact with `value` written into the first row of `image` in `tensor`."""
    with safe_open(str(source), framework="np") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safe_open handle is not a dict)
        metadata = f.metadata()
    row = int(tensors["offsets"][int(np.flatnonzero(tensors["image_ids"] == image)[0])])
    tensors[tensor].reshape(len(tensors[tensor]), -1)[row, 0] = value  # a view: writes into the array
    save_file(tensors, str(path), metadata=metadata)
    return path


def test_nan_teacher_features_stop_training_with_exit_3(demo_data, demo_regions, tmp_path):
    """Features are checked as they are read: the epoch reaches image 1 (train split) and the run stops there."""
    regions = _regions_with(demo_regions, tmp_path / "nan.safetensors", "teacher_features", 1, np.nan)
    out = tmp_path / "run"
    result = invoke(["finetune", "--task", "caption", "--model", "tiny", "--regions", regions, "--features",
                     "teacher", "--annotations", demo_data / "karpathy.json", "--split", "train", "--epochs", 1,
                     "--batch-size", 8, "--device", "cpu", "--out", out])  # fmt: skip
    assert_refused(result, 3, str(regions), "non-finite values in teacher_features of image 1")
    assert not (out / "model.safetensors").exists() and not (out / "config.json").exists()


def test_inf_student_features_stop_evaluation_with_exit_3(caption_model, demo_data, demo_regions, tmp_path):
    test_image = next(i["cocoid"] for i in json.loads((demo_data / "karpathy.json").read_text())["images"]
                      if i["split"] == "test")  # fmt: skip
    regions = _regions_with(demo_regions, tmp_path / "inf.safetensors", "student_features", test_image, -np.inf)
    out = tmp_path / "eval"
    result = invoke(["eval-caption", "--model", caption_model, "--regions", regions, "--annotations",
                     demo_data / "karpathy.json", "--split", "test", "--no-meteor", "--device", "cpu", "--out", out])  # fmt: skip
    assert_refused(result, 3, str(regions), f"non-finite values in student_features of image {test_image}")
    assert not out.exists()


@pytest.mark.parametrize("tensor", ["boxes", "scores"])
def test_nan_boxes_or_scores_are_refused_when_opened(demo_data, demo_regions, tmp_path, tensor):
    regions = _regions_with(demo_regions, tmp_path / "bad.safetensors", tensor, 1, np.nan)
    result = invoke(["finetune", "--task", "caption", "--model", "tiny", "--regions", regions, "--annotations",
                     demo_data / "karpathy.json", "--max-steps", 1, "--device", "cpu", "--out", tmp_path / "run"])  # fmt: skip
    assert_refused(result, 3, str(regions), "non-finite boxes or scores")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------ newer schema


def _bump_metadata(path: Path) -> None:
    def bump(header: dict) -> None:
        meta = header["__metadata__"]
        meta["vlkd.schema_version"] = str(int(meta["vlkd.schema_version"]) + 1)

    edit_header(path, bump)


def _bump_config(path: Path) -> None:
    config = json.loads(path.read_text())
    config["vlkd_schema_version"] += 1
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("command", ["eval-caption", "finetune", "distill"])
@pytest.mark.parametrize("where", ["config.json", "model.safetensors"])
def test_model_dir_of_a_newer_schema_says_upgrade(caption_model, demo_data, demo_regions, tmp_path, where, command):
    model = tmp_path / "model"
    shutil.copytree(caption_model, model, ignore=shutil.ignore_patterns("checkpoints"))
    (_bump_config if where == "config.json" else _bump_metadata)(model / where)
    out = tmp_path / "out"
    common = ["--regions", demo_regions, "--annotations", demo_data / "karpathy.json", "--device", "cpu", "--out", out]
    if command == "eval-caption":
        args = ["eval-caption", "--model", model, "--no-meteor", *common]
    elif command == "finetune":
        args = ["finetune", "--task", "caption", "--model", model, "--features", "student", "--max-steps", 1, *common]
    else:
        args = ["distill", "--teacher", model, "--student", "tiny", "--task", "caption", "--max-steps", 1, *common]
    version = SCHEMA_VERSIONS["model"] + 1
    assert_refused(invoke(args), 3, str(model / where), f"schema version {version}", "upgrade vlkd")
    assert not out.exists()


@pytest.mark.parametrize("kind", ["regions", "eval", "checkpoint"])
def test_artifacts_of_a_newer_schema_say_upgrade(caption_model, demo_data, demo_regions, tmp_path, kind):
    out = tmp_path / "out"
    if kind == "regions":
        victim = tmp_path / "regions.safetensors"
        shutil.copy(demo_regions, victim)
        args = ["finetune", "--task", "caption", "--model", "tiny", "--regions", victim, "--annotations",
                demo_data / "karpathy.json", "--max-steps", 1, "--device", "cpu", "--out", out]  # fmt: skip
    elif kind == "eval":  # an eval-retrieval output fed back as --scores
        victim = _scores_file(tmp_path / "scores.safetensors")
        assert invoke(["eval-retrieval", "--scores", victim, "--out", tmp_path / "first"]).exit_code == 0
        victim = tmp_path / "first" / "scores.safetensors"
        args = ["eval-retrieval", "--scores", victim, "--out", out]
    else:  # --resume from a checkpoint written by a newer vlkd
        out = tmp_path / "run"
        shutil.copytree(caption_model, out)
        victim = out / "checkpoints" / "step-00000001" / "checkpoint.safetensors"
        args = ["finetune", "--task", "caption", "--model", "tiny", "--regions", demo_regions, "--features", "student",
                "--annotations", demo_data / "karpathy.json", "--split", "train", "--max-steps", 2, "--batch-size", 8,
                "--device", "cpu", "--resume", "--out", out]  # fmt: skip
    before = victim.read_bytes()
    _bump_metadata(victim)
    assert victim.read_bytes() != before
    assert_refused(invoke(args), 3, str(victim), "upgrade vlkd")
    if kind != "checkpoint":
        assert not out.exists()


@pytest.fixture(scope="module")
def nan_models(demo_data, demo_regions, tmp_path_factory) -> dict[str, Path]:
    """Tiny models for every reader of regions: captioning on each side, VQA, a retrieval cross-encoder teacher."""
    from tests.conftest import train_tiny

    root = tmp_path_factory.mktemp("nan-models")
    return {
        "caption": train_tiny(demo_data, demo_regions, root / "caption", "caption"),
        "teacher": train_tiny(demo_data, demo_regions, root / "teacher", "caption", "--features", "teacher"),
        "vqa": train_tiny(demo_data, demo_regions, root / "vqa", "vqa"),
        "itm": train_tiny(demo_data, demo_regions, root / "itm", "retrieval", "--features", "teacher"),
    }


def _last_image(demo_data: Path, split: str) -> int:
    images = json.loads((demo_data / "karpathy.json").read_text())["images"]
    return [i["cocoid"] for i in images if i["split"] in ({"train", "restval"} if split == "train" else {split})][-1]


READERS = {  # reader -> (split of the corrupted image, side, arguments after --regions R)
    "finetune": ("train", "student", lambda d, m: ["finetune", "--task", "caption", "--model", "tiny",
                                                   "--annotations", d / "karpathy.json", "--split", "train"]),
    "adapt-teacher": ("train", "teacher", lambda d, m: ["adapt-teacher", "--teacher", m["teacher"], "--task",
                                                        "caption", "--annotations", d / "karpathy.json", "--split",
                                                        "train"]),
    "distill": ("train", "student", lambda d, m: ["distill", "--teacher", m["teacher"], "--student", "tiny", "--task",
                                                  "caption", "--annotations", d / "karpathy.json", "--split", "train"]),
    "dcd": ("train", "teacher", lambda d, m: ["distill", "--method", "dcd", "--teacher", m["itm"], "--student", "tiny",
                                              "--task", "retrieval", "--arch", "dual", "--loss", "dcd=1",
                                              "--loss", "task=1", "--annotations", d / "karpathy.json",
                                              "--split", "train", "--dcd-pool", 4, "--dcd-k", 2]),
    "eval-caption": ("test", "student", lambda d, m: ["eval-caption", "--model", m["caption"], "--annotations",
                                                      d / "karpathy.json", "--split", "test", "--no-meteor"]),
    "eval-vqa": ("val", "student", lambda d, m: ["eval-vqa", "--model", m["vqa"], "--questions", d / "questions.json",
                                                 "--annotations", d / "annotations.json"]),
    "eval-retrieval": ("test", "teacher", lambda d, m: ["eval-retrieval", "--model", m["itm"], "--annotations",
                                                        d / "karpathy.json", "--split", "test"]),
}  # fmt: skip


@pytest.mark.parametrize("reader", list(READERS))
def test_a_nan_anywhere_in_the_features_a_run_reads_is_exit_3(reader, nan_models, demo_data, demo_regions, tmp_path):
    """Every reader of regions scans the feature rows it will read before it starts: a NaN in the last image of the
    split stops it (exit 3, file and image id), although one training step would never draw that image."""
    split, side, args = READERS[reader]
    image = _last_image(demo_data, split)
    regions = _regions_with(demo_regions, tmp_path / "nan.safetensors", f"{side}_features", image, np.nan)
    out = tmp_path / "out"
    extra = ["--max-steps", 1, "--batch-size", 2] if reader in ("finetune", "adapt-teacher", "distill", "dcd") else []
    result = invoke([*args(demo_data, nan_models), "--regions", regions, *extra, "--device", "cpu", "--out", out])
    assert_refused(result, 3, str(regions), f"non-finite values in {side}_features of image {image}")
    assert not out.exists()
