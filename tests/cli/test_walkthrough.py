"""The README's real-COCO walk-through, run as written (only smaller: `tests/walkthrough.py` says how) in a tree
laid out like COCO 2014 + Karpathy + VQA v2 (`make-demo-data --layout coco2014`), and its retrieval part on a
Flickr30K-shaped tree. The commands are read from README.md itself, so the docs and this test cannot drift."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import assert_refused, invoke
from tests.walkthrough import documented_commands

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
HEADING = "## Walk-through on real COCO"


def _retrieval(args: list[str]) -> bool:
    """A command of the retrieval path: region extraction, retrieval training and evaluation."""
    task = args[args.index("--task") + 1] if "--task" in args else None
    return args[0] in ("extract-regions", "eval-retrieval") or (args[0] in ("finetune", "distill") and task == "retrieval")


def _run(commands: list[list[str]], tree: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.chdir(tree)
    ran = []
    for args in commands:
        if "other_model_results.json" in args:  # "any model's COCO results file": the student's, copied
            shutil.copy(tree / "runs" / "eval" / "student-kd" / "predictions.json", tree / "other_model_results.json")
        result = invoke(args)
        assert result.exit_code == 0, f"vlkd {' '.join(args)}\n{result.output}"
        ran.append(args[0])
    return ran


@pytest.fixture(scope="module")
def coco_tree(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("walkthrough") / "work"
    result = invoke(["make-demo-data", "--out", tree, "--num-images", 50, "--image-size", 64, "--layout", "coco2014"])
    assert result.exit_code == 0, result.output
    return tree


def test_the_coco_tree_is_laid_out_like_the_public_files(coco_tree) -> None:
    karpathy = json.loads((coco_tree / "dataset_coco.json").read_text())
    for image in karpathy["images"]:
        path = coco_tree / "coco" / image["filepath"] / image["filename"]
        assert path.is_file() and image["filename"] == f"COCO_{image['filepath']}_{image['cocoid']:012d}.jpg"
        assert (image["filepath"] == "train2014") == (image["split"] == "train")
    for folder in ("train2014", "val2014"):
        captions = json.loads((coco_tree / "coco" / "annotations" / f"captions_{folder}.json").read_text())
        assert captions["images"] and all(folder in i["file_name"] for i in captions["images"])
        questions = json.loads((coco_tree / f"v2_OpenEnded_mscoco_{folder}_questions.json").read_text())
        ids = {i["id"] for i in captions["images"]}
        assert questions["questions"] and all(q["image_id"] in ids for q in questions["questions"])


def test_the_readme_walk_through_runs_as_written(coco_tree, monkeypatch) -> None:
    commands = documented_commands(README, HEADING)
    ran = _run(commands, coco_tree, monkeypatch)
    for command in ("train-detector", "extract-regions", "finetune", "adapt-teacher", "distill", "eval-caption",
                    "eval-vqa", "eval-retrieval"):  # fmt: skip
        assert command in ran, command
    assert (coco_tree / "runs" / "eval" / "student-kd" / "metrics.json").is_file()
    assert json.loads((coco_tree / "runs" / "eval" / "vqa" / "metrics.json").read_text())["overall"] >= 0
    recall = json.loads((coco_tree / "runs" / "eval" / "retrieval-1k-two-stage" / "metrics.json").read_text())
    assert set(recall) >= {"i2t_r1", "t2i_r1", "rsum"}


def test_the_retrieval_walk_through_on_a_flickr30k_tree(coco_tree, tmp_path, monkeypatch) -> None:
    """The same retrieval commands with dataset_flickr30k.json and flickr30k-images/ (ids from the file names)."""
    tree = tmp_path / "flickr"
    result = invoke(["make-demo-data", "--out", tree, "--num-images", 50, "--image-size", 64, "--layout", "flickr30k"])
    assert result.exit_code == 0, result.output
    shutil.copytree(coco_tree / "runs" / "detector", tree / "runs" / "detector")  # the student detector (COCO)
    shutil.copy(coco_tree / "teacher_detections.json", tree)  # the same demo images, the same ids
    swap = {"dataset_coco.json": "dataset_flickr30k.json", "coco": "flickr30k-images"}
    flickr = [[swap.get(a, a) for a in args] for args in documented_commands(README, HEADING) if _retrieval(args)]
    ran = _run(flickr, tree, monkeypatch)
    assert ran.count("extract-regions") == 5 and "eval-retrieval" in ran and ran[-1] == "eval-retrieval"
    recall = json.loads((tree / "runs" / "eval" / "retrieval-5k" / "metrics.json").read_text())
    assert set(recall) >= {"i2t_r1", "t2i_r10"}


SERVER_ONLY = ("test2015", "test-dev")  # inputs for the evaluation servers, which the demo tree does not have


def test_the_usage_guide_runs_as_written(coco_tree, tmp_path, monkeypatch) -> None:
    """docs/usage.md's sections 1-4 in order, in a copy of the tree (its own runs/)."""
    tree = tmp_path / "usage"
    shutil.copytree(coco_tree, tree, ignore=shutil.ignore_patterns("runs", "other_model_results.json"))
    usage = ROOT / "docs" / "usage.md"
    headings = [line for line in usage.read_text().splitlines() if line.startswith("## ") and line[3].isdigit()]
    commands = [args for heading in headings for args in documented_commands(usage, heading)
                if not any(name in a for a in args for name in SERVER_ONLY)]  # fmt: skip
    ran = _run(commands, tree, monkeypatch)
    assert {"train-detector", "extract-regions", "finetune", "adapt-teacher", "distill", "eval-caption", "eval-vqa",
            "eval-retrieval"} <= set(ran)  # fmt: skip


def test_an_unknown_layout_is_a_usage_error(tmp_path) -> None:
    result = invoke(["make-demo-data", "--out", tmp_path / "d", "--layout", "coco2017"])
    assert_refused(result, 2, "--layout", "coco2014", "coco2017")
    assert not (tmp_path / "d").exists()
