"""Several regions artifacts read as one set of images (`--regions train --regions val`): one artifact per split, as
a real COCO pipeline extracts them, through training with validation, adaptation, distillation and evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import TINY_BACKBONE, TINY_TEACHER_BACKBONE, assert_refused, invoke
from vlkd_cli.artifacts.regions import Regions, multiset_key


def _extract(demo_data: Path, proposals: Path, out: Path, split: str, *extra) -> Path:
    result = invoke(["extract-regions", "--images", demo_data / "images", "--annotations", demo_data / "karpathy.json",
                     "--split", split, "--student-backbone", TINY_BACKBONE, "--teacher-backbone", TINY_TEACHER_BACKBONE,
                     "--image-size", 64, "--device", "cpu", "--proposals", proposals, "--out", out, *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def split_regions(demo_data, demo_proposals, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("split-regions")
    return {split: _extract(demo_data, demo_proposals, root / f"regions-{split}.safetensors", split)
            for split in ("train", "val", "test")}  # fmt: skip


def test_several_files_are_one_set_of_images(split_regions, demo_data) -> None:
    train, val = Regions(split_regions["train"]), Regions(split_regions["val"])
    both = Regions([split_regions["train"], split_regions["val"]])
    assert both.num_images == train.num_images + val.num_images
    assert set(both.image_ids.tolist()) == set(train.image_ids.tolist()) | set(val.image_ids.tolist())
    image = int(val.image_ids[0])
    assert both.image(both.index_of(image)).boxes.tolist() == val.image(0).boxes.tolist()
    # The key of several sets does not depend on their order; the key of the training images is train's own.
    assert both.boxes_sha256 == multiset_key([train.boxes_sha256, val.boxes_sha256])
    assert both.boxes_sha256 == Regions([split_regions["val"], split_regions["train"]]).boxes_sha256
    assert both.key_for(range(train.num_images)) == train.boxes_sha256
    assert both.key_for([both.index_of(image)]) == val.boxes_sha256
    assert both.sources_of([both.index_of(image)]) == [split_regions["val"]]


def test_an_image_in_two_files_is_exit_3_naming_both(split_regions, demo_data, tmp_path) -> None:
    twice = tmp_path / "copy.safetensors"
    shutil.copy(split_regions["val"], twice)
    result = invoke(["finetune", "--task", "caption", "--model", "tiny", "--regions", split_regions["val"],
                     "--regions", twice, "--annotations", demo_data / "karpathy.json", "--max-steps", 1,
                     "--device", "cpu", "--out", tmp_path / "run"])  # fmt: skip
    assert_refused(result, 3, "is in two regions artifacts", str(split_regions["val"]), str(twice))
    assert not (tmp_path / "run").exists()


def test_mixed_backbones_are_exit_3(split_regions, demo_data, demo_proposals, tmp_path) -> None:
    other = _extract(demo_data, demo_proposals, tmp_path / "other-val.safetensors", "val", "--seed", 1)  # other init
    result = invoke(["eval-caption", "--model", tmp_path, "--regions", split_regions["train"], "--regions", other,
                     "--annotations", demo_data / "karpathy.json", "--out", tmp_path / "eval"])  # fmt: skip
    assert_refused(result, 3, str(other), f"disagrees with {split_regions['train']} on vlkd.student_backbone_sha256")


def test_the_walk_through_with_regions_per_split(split_regions, demo_data, tmp_path) -> None:
    """finetune with validation on train + val regions → adapt-teacher → distill (no --allow-misaligned) →
    eval-caption on the test regions."""
    train_val = ["--regions", split_regions["train"], "--regions", split_regions["val"]]
    common = ["--annotations", demo_data / "karpathy.json", "--split", "train", "--batch-size", 4, "--device", "cpu"]
    teacher = tmp_path / "teacher"
    result = invoke(["finetune", "--task", "caption", "--model", "tiny", "--features", "teacher", *train_val,
                     "--val-split", "val", "--eval-every", 2, "--max-steps", 2, *common, "--out", teacher])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["val_samples"] > 0
    adapted = tmp_path / "adapted"
    result = invoke(["adapt-teacher", "--teacher", teacher, *train_val, "--task", "caption", "--max-steps", 1, *common,
                     "--out", adapted])  # fmt: skip
    assert result.exit_code == 0, result.output
    train_key = Regions(split_regions["train"]).boxes_sha256
    assert json.loads((adapted / "config.json").read_text())["adapted_to_boxes_sha256"] == train_key
    student = tmp_path / "student"
    result = invoke(["distill", "--teacher", adapted, "--student", "tiny", "--task", "caption", *train_val,
                     "--val-split", "val", "--eval-every", 1, "--max-steps", 1, "--queue-size", 16, *common,
                     "--out", student])  # fmt: skip
    assert result.exit_code == 0, result.output
    # A teacher adapted on train does not distil on val alone (other training boxes): refused.
    refused = invoke(["distill", "--teacher", adapted, "--student", "tiny", "--task", "caption", "--regions",
                      split_regions["test"], "--annotations", demo_data / "karpathy.json", "--split", "test",
                      "--max-steps", 1, "--device", "cpu", "--out", tmp_path / "refused"])  # fmt: skip
    assert_refused(refused, 3, "teacher is not adapted to these regions", str(split_regions["test"]))
    result = invoke(["eval-caption", "--model", student, "--regions", split_regions["test"], "--annotations",
                     demo_data / "karpathy.json", "--split", "test", "--no-meteor", "--device", "cpu",
                     "--out", tmp_path / "eval"])  # fmt: skip
    assert result.exit_code == 0, result.output


def test_eval_vqa_and_eval_caption_narrowed_to_a_karpathy_split(split_regions, demo_data, tmp_path) -> None:
    """VQA questions of all images, scored on the Karpathy test images only (whose regions are all that exist);
    COCO captions (not a Karpathy file) as references of the test split."""
    from tests.conftest import train_tiny

    both = ["--regions", split_regions["train"], "--regions", split_regions["val"]]
    vqa = train_tiny(demo_data, split_regions["train"], tmp_path / "vqa", "vqa", *both[2:])
    caption = train_tiny(demo_data, split_regions["train"], tmp_path / "caption", "caption")
    karpathy = demo_data / "karpathy.json"
    test_ids = {i["cocoid"] for i in json.loads(karpathy.read_text())["images"] if i["split"] == "test"}
    base = ["eval-vqa", "--model", vqa, "--regions", split_regions["test"], "--questions", demo_data / "questions.json",
            "--annotations", demo_data / "annotations.json", "--device", "cpu"]  # fmt: skip
    assert invoke([*base, "--out", tmp_path / "all"]).exit_code == 3  # other images' questions: no regions
    result = invoke([*base, "--split-file", karpathy, "--split", "test", "--out", tmp_path / "vqa-test"])
    assert result.exit_code == 0, result.output
    answered = json.loads((tmp_path / "vqa-test" / "predictions.json").read_text())
    listed = json.loads((demo_data / "questions.json").read_text())["questions"]
    questions = {q["question_id"]: q["image_id"] for q in listed}
    assert answered and {questions[a["question_id"]] for a in answered} <= test_ids
    assert len(answered) == sum(1 for image in questions.values() if image in test_ids)
    result = invoke(["eval-caption", "--model", caption, "--regions", split_regions["test"], "--annotations",
                     demo_data / "captions.json", "--split-file", karpathy, "--split", "test", "--no-meteor",
                     "--device", "cpu", "--out", tmp_path / "cap-test"])  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = json.loads((tmp_path / "cap-test" / "predictions.json").read_text())
    assert {r["image_id"] for r in scored} == test_ids
