"""`vlkd benchmark-latency` end to end on tiny models trained for 2 steps: the JSON structure, skipped stages,
ratios to the first model, the raw timings in the `latency` artifact, lineage backbones, and the usage errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from tests.conftest import TINY_BACKBONE, TINY_TEACHER_BACKBONE, assert_refused, invoke, train_tiny
from vlkd_cli.artifacts.header import read_header

STAGES = ["decode", "detector", "backbone_roi", "inputs", "transformer", "head", "total"]
TIMED = ["median_ms", "p90_ms", "mean_ms"]


@pytest.fixture(scope="module")
def models(demo_data, demo_regions, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("latency-models")
    return {
        "teacher": train_tiny(demo_data, demo_regions, root / "teacher", "caption", "--features", "teacher"),
        "student": train_tiny(demo_data, demo_regions, root / "student", "caption"),
        "vqa": train_tiny(demo_data, demo_regions, root / "vqa", "vqa"),
        "cross": train_tiny(demo_data, demo_regions, root / "cross", "retrieval"),
        "dual": train_tiny(demo_data, demo_regions, root / "dual", "retrieval", "--arch", "dual"),
    }


def _bench(demo_data, out, *args):
    common = ["benchmark-latency", "--images", demo_data / "images", "--warmup", 1, "--iters", 2, "--device", "cpu",
              "--threads", 1, "--out", out]  # fmt: skip
    return invoke([*common, *args])


def _rows(document, model=None, stage=None):
    return [r for r in document["results"] if (model is None or r["model"] == model) and
            (stage is None or r["stage"] == stage)]  # fmt: skip


def test_caption_teacher_vs_student_with_proposals(demo_data, demo_proposals, models, tmp_path):
    teacher, student = f"{models['teacher']}/", str(models["student"])  # the arguments as given, trailing slash kept
    out = tmp_path / "latency"
    threads = torch.get_num_threads()
    result = _bench(demo_data, out, "--model", teacher, "--model", student, "--proposals", demo_proposals,
                    "--batch-sizes", "1,2", "--decode-length", 3)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "detector skipped: regions come from --proposals" in result.output and "[1]/[0]" in result.output
    document = json.loads((out / "latency.json").read_text())
    assert document["task"] == "caption" and document["reference"] == teacher
    assert {"threads", "device", "torch", "cpu"} <= set(document["environment"])
    assert document["environment"]["threads"] == 1 and torch.get_num_threads() == threads  # --threads, then restored
    assert [(r["model"], r["batch_size"], r["stage"]) for r in document["results"]] == [
        (m, b, s) for m in (teacher, student) for b in (1, 2) for s in STAGES
    ]
    for row in _rows(document, stage="detector"):
        assert row["skipped"] == "regions come from --proposals" and row["median_ms"] is None and row["iters"] == 0
    tensors = load_file(out / "latency.safetensors")
    assert "0.1.detector" not in tensors and len(tensors) == 2 * 2 * 6
    for index, model in enumerate((teacher, student)):
        for row in _rows(document, model):
            if row["stage"] == "detector":
                continue
            raw = tensors[f"{index}.{row['batch_size']}.{row['stage']}"]
            assert raw.dtype == np.float64 and raw.shape == (2,) and (raw > 0).all()
            assert row["iters"] == 2 and row["median_ms"] == pytest.approx(np.median(raw))
            assert row["mean_ms"] == pytest.approx(raw.mean()) and row["p90_ms"] == pytest.approx(
                np.percentile(raw, 90)
            )
            reference = _rows(document, teacher, row["stage"])[row["batch_size"] - 1]
            assert row["ratio_to_reference"] == pytest.approx(row["median_ms"] / reference["median_ms"])
        for size in (1, 2):  # the stages are nested in the wall clock of the whole iteration
            parts = sum(tensors[f"{index}.{size}.{s}"] for s in STAGES if s not in ("detector", "total"))
            assert (tensors[f"{index}.{size}.total"] >= parts).all()
    assert all(r["ratio_to_reference"] == 1.0 for r in _rows(document, teacher) if r["median_ms"] is not None)
    info = {m["model"]: m for m in document["models"]}
    assert info[teacher]["backbone"] == TINY_TEACHER_BACKBONE and info[student]["backbone"] == TINY_BACKBONE
    for m in info.values():  # the seeded random backbones of extract-regions are rebuilt exactly
        assert m["backbone_weights"] == "lineage (sha256 matches)" and m["image_size"] == 64
        assert m["parameters"]["transformer"] > 0 and m["parameters"]["backbone"] > 0
        assert m["peak_rss_scope"] in ("model", "process") and m["peak_rss_mib"] > 0
        assert m["rss_before_mib"] is None or m["peak_rss_mib"] >= m["rss_before_mib"] > 0  # None off Linux
    assert info[teacher]["parameters"]["backbone"] > info[student]["parameters"]["backbone"]  # resnet18 > resnet10t
    header = read_header(out / "latency.safetensors")
    assert header.get("vlkd.kind") == "latency" and header.get("vlkd.command") == "benchmark-latency"
    assert json.loads(header.get("vlkd.models")) == [teacher, student]
    assert {r["kind"] for r in json.loads(header.get("vlkd.inputs"))} == {"model", "images", "proposals"}


def test_detector_stage_and_shared_detector_backbone(demo_data, tiny_detector, models, tmp_path):
    out = tmp_path / "latency"
    result = _bench(demo_data, out, "--model", models["student"], "--detector", tiny_detector, "--batch-sizes", "2",
                    "--decode-length", 3, "--beam-size", 2)  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads((out / "latency.json").read_text())
    rows = {r["stage"]: r for r in document["results"]}
    assert not any("skipped" in r for r in rows.values()) and all(rows[s]["median_ms"] > 0 for s in STAGES)
    assert "detector's backbone maps" in rows["backbone_roi"]["note"]  # student features = the detector's (resnet10t)
    (info,) = document["models"]
    assert info["backbone_weights"].startswith("the detector's backbone") and info["parameters"]["backbone"] == 0
    assert info["parameters"]["detector"] > 0


@pytest.fixture(scope="module")
def teacher_detector(demo_data, tmp_path_factory) -> Path:
    """A detector on the teacher's backbone (resnet18) at 96 px: the teacher's own detector."""
    out = tmp_path_factory.mktemp("teacher-detector") / "detector"
    result = invoke(["train-detector", "--images", demo_data / "images", "--instances", demo_data / "instances.json",
                     "--backbone", TINY_TEACHER_BACKBONE, "--image-size", 96, "--max-steps", 1, "--batch-size", 4,
                     "--out", out, "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_each_model_with_its_own_detector(demo_data, tiny_detector, teacher_detector, models, tmp_path):
    out = tmp_path / "latency"
    teacher, student = str(models["teacher"]), str(models["student"])
    result = _bench(demo_data, out, "--model", teacher, "--detector", teacher_detector, "--model", student,
                    "--detector", tiny_detector, "--batch-sizes", "1", "--decode-length", 3)  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads((out / "latency.json").read_text())
    info = {m["model"]: m for m in document["models"]}
    assert info[teacher]["detector"] == str(teacher_detector) and info[student]["detector"] == str(tiny_detector)
    assert info[teacher]["image_size"] == 96 and info[student]["image_size"] == 64  # each its detector's size
    for m in info.values():  # each pools its features from its own detector's backbone maps
        assert m["backbone_weights"].startswith("the detector's backbone") and m["parameters"]["backbone"] == 0
    assert info[teacher]["parameters"]["detector"] > info[student]["parameters"]["detector"]  # resnet18 > resnet10t
    assert all(r["median_ms"] > 0 for r in _rows(document, stage="detector"))
    assert all(set(m["regions_per_image"]) == {"1"} for m in info.values())
    header = read_header(out / "latency.safetensors")
    assert json.loads(header.get("vlkd.config"))["detector"] == [str(teacher_detector), str(tiny_detector)]
    detectors = [r for r in json.loads(header.get("vlkd.inputs")) if r["kind"] == "detector"]
    assert [r["path"] for r in detectors] == [str(teacher_detector), str(tiny_detector)]


def test_one_detector_serves_every_model(demo_data, tiny_detector, models, tmp_path):
    out = tmp_path / "latency"
    result = _bench(demo_data, out, "--model", models["teacher"], "--detector", tiny_detector, "--model",
                    models["student"], "--batch-sizes", "1", "--decode-length", 2, "--image-size", 48)  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads((out / "latency.json").read_text())
    assert [m["detector"] for m in document["models"]] == [str(tiny_detector)] * 2
    assert [m["image_size"] for m in document["models"]] == [48, 48]  # --image-size wins over the detector's
    assert not document["models"][0]["backbone_weights"].startswith("the detector's")  # resnet18 lineage: its own


@pytest.mark.parametrize(
    ("order", "needle"),
    [
        (["m", "m", "d", "d"], "right after its --model"),
        (["d", "m", "d", "m"], "right after its --model"),
        (["m", "d", "d", "m"], "right after its --model"),
        (["m", "d", "m", "d", "m"], "3 --model and 2 --detector"),
    ],
)
def test_detectors_that_do_not_pair_are_usage_errors(order, needle, demo_data, tiny_detector, tmp_path):
    args = [a for flag in order for a in (("--model", tmp_path) if flag == "m" else ("--detector", tiny_detector))]
    assert_refused(_bench(demo_data, tmp_path / "out", *args), 2, needle)
    assert not (tmp_path / "out").exists()


def test_pair_detectors_rules():
    from vlkd_cli.cli.benchmark_latency import pair_detectors
    from vlkd_cli.errors import UsageError

    pair_detectors(["model", "model", "detector"], 2, 1)  # one for all, wherever it stands
    pair_detectors(["detector", "model", "model"], 2, 1)
    pair_detectors(["model", "detector", "images", "model", "detector"], 2, 2)
    pair_detectors(["model", "model"], 2, 2)  # the detectors came from --config: by position
    pair_detectors(None, 3, 3)
    with pytest.raises(UsageError, match="2 --model and 3 --detector"):
        pair_detectors(None, 2, 3)


def test_vqa_without_proposals_uses_a_grid(demo_data, models, tmp_path):
    out = tmp_path / "latency"
    result = _bench(demo_data, out, "--model", models["vqa"], "--batch-sizes", "1", "--task", "vqa")
    assert result.exit_code == 0, result.output
    document = json.loads((out / "latency.json").read_text())
    rows = {r["stage"]: r for r in document["results"]}
    assert rows["detector"]["skipped"].startswith("no --detector or --proposals")
    assert rows["transformer"]["median_ms"] > 0 and rows["head"]["median_ms"] > 0


def test_retrieval_gallery_cross_dual_and_two_stage(demo_data, demo_proposals, models, tmp_path):
    out = tmp_path / "latency"
    cross, dual = str(models["cross"]), str(models["dual"])
    result = _bench(demo_data, out, "--model", cross, "--model", dual, "--proposals", demo_proposals,
                    "--gallery-images", 6, "--gallery-texts", 12, "--max-pairs", 30, "--batch-sizes", 8)  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads((out / "latency.json").read_text())
    assert document["mode"] == "retrieval"
    assert [r["stage"] for r in _rows(document, cross)] == ["score_pairs", "rank", "total"]
    assert [r["stage"] for r in _rows(document, dual)] == ["embed", "search", "total", "rerank", "two_stage_total"]
    scored = _rows(document, cross, "score_pairs")[0]
    assert scored["extrapolated_from_pairs"] == 24  # whole text rows: 2 images x 12 texts, scaled to 6 x 12
    assert all(r["gallery_images"] == 6 and r["gallery_texts"] == 12 for r in document["results"])
    two_stage = _rows(document, dual, "two_stage_total")[0]
    assert two_stage["rerank_model"] == cross and two_stage["rerank_k"] == 16
    cross_total = _rows(document, cross, "total")[0]["median_ms"]
    assert two_stage["ratio_to_reference"] == pytest.approx(two_stage["median_ms"] / cross_total)
    assert _rows(document, dual, "embed")[0]["ratio_to_reference"] is None  # the reference has no such stage
    tensors = load_file(out / "latency.safetensors")
    assert sorted(tensors) == sorted([f"0.8.{s}" for s in ("score_pairs", "rank", "total")] +
                                     [f"1.8.{s}" for s in ("embed", "search", "total", "rerank", "two_stage_total")])  # fmt: skip


def test_help_and_argument_errors_without_importing_torch(tmp_path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from vlkd_cli.cli import app\n"
        "r = CliRunner().invoke(app, ['benchmark-latency', '--help'])\n"
        "assert r.exit_code == 0 and 'Example' in r.output and 'reference' in r.output, r.output\n"
        f"r = CliRunner().invoke(app, ['benchmark-latency', '--model', 'm', '--images', {str(tmp_path)!r}, "
        "'--out', 'o', '--batch-sizes', '1,x'])\n"
        "assert r.exit_code == 2 and '--batch-sizes' in r.output, r.output\n"
        "assert 'torch' not in sys.modules, 'help or an argument error imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_usage_and_input_errors(demo_data, demo_proposals, tiny_detector, models, tmp_path):
    student = models["student"]
    both = _bench(
        demo_data, tmp_path / "a", "--model", student, "--detector", tiny_detector, "--proposals", demo_proposals
    )
    assert both.exit_code == 2 and "at most one of --detector" in both.output
    bad_sizes = _bench(demo_data, tmp_path / "b", "--model", student, "--batch-sizes", "1,x")
    assert bad_sizes.exit_code == 2 and "--batch-sizes" in bad_sizes.output
    for flag, value in (("--max-pairs", 0), ("--iters", 0), ("--rerank-k", 5), ("--warmup", -1)):
        refused = _bench(demo_data, tmp_path / "b", "--model", student, flag, value)
        assert refused.exit_code == 2 and flag in refused.output
    missing = _bench(demo_data, tmp_path / "c", "--model", tmp_path / "nowhere")
    assert missing.exit_code == 2
    too_long = _bench(demo_data, tmp_path / "d", "--model", student, "--decode-length", 40)
    assert too_long.exit_code == 2 and "max_text_len" in too_long.output
    mixed = _bench(demo_data, tmp_path / "e", "--model", student, "--model", models["vqa"])
    assert mixed.exit_code == 3 and "different tasks" in mixed.output
    wrong_task = _bench(demo_data, tmp_path / "f", "--model", student, "--task", "vqa")
    assert wrong_task.exit_code == 3 and "--task is vqa" in wrong_task.output
    newer = tmp_path / "newer"
    shutil.copytree(student, newer)
    config = json.loads((newer / "config.json").read_text())
    (newer / "config.json").write_text(json.dumps({**config, "vlkd_schema_version": 99}))
    refused = _bench(demo_data, tmp_path / "g", "--model", newer)
    assert refused.exit_code == 3 and "newer" in refused.output and "upgrade vlkd" in refused.output
    (tmp_path / "file").write_text("x")
    out_file = _bench(demo_data, tmp_path / "file", "--model", student)
    assert out_file.exit_code == 2
    for name in "abcdefg":
        assert not (tmp_path / name).exists()  # nothing written on failure
