"""Session-scoped tiny fixtures: demo data at 64 px, a detector trained for a few steps, tiny backbones."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["VLKD_PROGRESS"] = "0"

TINY_BACKBONE = "resnet10t"  # 5M parameters, fast at 64 px
TINY_TEACHER_BACKBONE = "resnet18"


def invoke(args: list[str]):
    """Run the CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    from vlkd_cli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def assert_refused(result, code: int, *needles: str) -> str:
    """Exit `code`, no traceback, exactly one line on stderr holding every needle; return that line."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "data"
    result = invoke(["make-demo-data", "--out", out, "--num-images", 24, "--image-size", 64, "--seed", 0])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def demo_proposals(demo_data: Path) -> Path:
    """The ground-truth boxes as a COCO results file: proposals from 'another detector'."""
    instances = json.loads((demo_data / "instances.json").read_text())
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
               for a in instances["annotations"]]  # fmt: skip
    path = demo_data.parent / "proposals.json"
    path.write_text(json.dumps(results))
    return path


@pytest.fixture(scope="session")
def tiny_detector(demo_data: Path) -> Path:
    out = demo_data.parent / "detector"
    result = invoke([
        "train-detector", "--images", demo_data / "images", "--instances", demo_data / "instances.json",
        "--backbone", TINY_BACKBONE, "--image-size", 64, "--max-steps", 4, "--batch-size", 8, "--out", out,
        "--device", "cpu",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def demo_regions(demo_data: Path, demo_proposals: Path) -> Path:
    """Regions of every demo image: ground-truth boxes as proposals, tiny student and teacher backbones."""
    out = demo_data.parent / "regions.safetensors"
    result = invoke([
        "extract-regions", "--images", demo_data / "images", "--annotations", demo_data / "instances.json",
        "--student-backbone", TINY_BACKBONE, "--teacher-backbone", TINY_TEACHER_BACKBONE, "--image-size", 64,
        "--device", "cpu", "--proposals", demo_proposals, "--out", out,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def task_models(demo_data: Path, demo_regions: Path, tmp_path_factory) -> dict[str, Path]:
    """Tiny trained models of every task on the demo regions (read-only: the evaluation tests share them)."""
    root = tmp_path_factory.mktemp("task-models")
    return {
        "caption": train_tiny(demo_data, demo_regions, root / "caption", "caption"),
        "vqa": train_tiny(demo_data, demo_regions, root / "vqa", "vqa"),
        "cross": train_tiny(demo_data, demo_regions, root / "cross", "retrieval"),
        "dual": train_tiny(demo_data, demo_regions, root / "dual", "retrieval", "--arch", "dual"),
    }


def train_tiny(demo_data: Path, regions: Path, out: Path, task: str, *extra, batch_size: int = 8) -> Path:
    """A `tiny` model trained for 2 steps on the demo data (student features unless `extra` says otherwise)."""
    annotations = demo_data / ("annotations.json" if task == "vqa" else "karpathy.json")
    args = ["finetune", "--task", task, "--model", "tiny", "--regions", regions, "--annotations", annotations,
            "--out", out, "--batch-size", batch_size, "--device", "cpu", "--max-steps", 2, "--split", "train",
            *extra]  # fmt: skip
    if "--features" not in extra:
        args += ["--features", "student"]
    if task == "vqa":
        args += ["--questions", demo_data / "questions.json", "--split-file", demo_data / "karpathy.json",
                 "--min-answer-count", 1]  # fmt: skip
    result = invoke(args)
    assert result.exit_code == 0, result.output
    return out
