"""Bad data files through the commands: non-UTF-8 text, images with zero regions, images with zero captions,
duplicate ids, and results files of another split. Each is handled (the run succeeds and says what it did) or
refused with exit 3 and one line naming the file and the ids.

Also covered elsewhere (not repeated here): a caption results file with an image twice
(tests/cli/test_eval.py::test_eval_caption_refuses_bad_results), the readers' own duplicate checks
(tests/data/test_coco.py, test_vqa.py, test_karpathy.py, test_image_index.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.conftest import TINY_BACKBONE, TINY_TEACHER_BACKBONE, invoke
from tests.reliability import assert_refused
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.artifacts.shards import shard_path


def _json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _load(demo_data: Path, name: str) -> Any:
    return json.loads((demo_data / name).read_text(encoding="utf-8"))


def _split_ids(demo_data: Path, split: str) -> list[int]:
    return sorted(i["cocoid"] for i in _load(demo_data, "karpathy.json")["images"] if i["split"] == split)


def _summary(result) -> dict:
    return json.loads(result.stdout[result.stdout.index("{") :])


# --------------------------------------------------------------------------------------------- non-UTF-8 text


def _latin1(path: Path, data: Any) -> Path:
    """`data` as JSON encoded in Latin-1 (é is the single byte 0xE9: invalid UTF-8)."""
    path.write_bytes(json.dumps(data, ensure_ascii=False).encode("latin-1"))
    return path


@pytest.mark.parametrize("file", ["coco-captions", "karpathy", "caption-results", "vqa-questions", "instances"])
def test_non_utf8_json_is_exit_3_naming_the_file(demo_data, demo_regions, tmp_path, file):
    out = tmp_path / "out"
    if file == "coco-captions":
        data = _load(demo_data, "captions.json")
        data["annotations"][0]["caption"] = "a café with a red circle"
        bad = _latin1(tmp_path / "captions.json", data)
        args = ["finetune", "--task", "caption", "--model", "tiny", "--regions", demo_regions, "--annotations", bad,
                "--max-steps", 1, "--device", "cpu", "--out", out]  # fmt: skip
    elif file == "karpathy":
        data = _load(demo_data, "karpathy.json")
        data["images"][0]["sentences"][0]["raw"] = "a café"
        bad = _latin1(tmp_path / "karpathy.json", data)
        results = _json(tmp_path / "res.json", [{"image_id": i, "caption": "a"} for i in _split_ids(demo_data, "test")])
        args = ["eval-caption", "--predictions", results, "--annotations", bad, "--no-meteor", "--out", out]
    elif file == "caption-results":
        records = [{"image_id": i, "caption": "un café"} for i in _split_ids(demo_data, "test")]
        bad = _latin1(tmp_path / "res.json", records)
        args = ["eval-caption", "--predictions", bad, "--annotations", demo_data / "karpathy.json", "--no-meteor",
                "--out", out]  # fmt: skip
    elif file == "vqa-questions":
        data = _load(demo_data, "questions.json")
        data["questions"][0]["question"] = "is there a café?"
        bad = _latin1(tmp_path / "questions.json", data)
        results = _json(tmp_path / "res.json", [{"question_id": q["question_id"], "answer": "yes"}
                                                for q in data["questions"]])  # fmt: skip
        args = ["eval-vqa", "--predictions", results, "--questions", bad, "--out", out]
    else:
        data = _load(demo_data, "instances.json")
        data["categories"][0]["name"] = "crème"
        bad = _latin1(tmp_path / "instances.json", data)
        args = ["extract-regions", "--images", demo_data / "images", "--annotations", bad, "--proposals", bad,
                "--student-backbone", TINY_BACKBONE, "--teacher-backbone", TINY_TEACHER_BACKBONE, "--out", out]  # fmt: skip
    assert_refused(invoke(args), 3, str(bad), "not UTF-8")
    assert not out.exists()


# ------------------------------------------------------------------------------------------ zero regions


@pytest.fixture(scope="module")
def sparse_regions(demo_data, demo_proposals, tmp_path_factory) -> tuple[Path, list[int]]:
    """Regions from a proposals file that has nothing for the odd image ids: half the images have 0 regions."""
    root = tmp_path_factory.mktemp("sparse")
    proposals = _json(root / "proposals.json", [p for p in json.loads(demo_proposals.read_text())
                                                if p["image_id"] % 2 == 0])  # fmt: skip
    out = root / "regions.safetensors"
    result = invoke(["extract-regions", "--images", demo_data / "images", "--annotations", demo_data / "instances.json",
                     "--student-backbone", TINY_BACKBONE, "--teacher-backbone", TINY_TEACHER_BACKBONE,
                     "--image-size", 64, "--device", "cpu", "--proposals", proposals, "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    empty = sorted(i["id"] for i in _load(demo_data, "instances.json")["images"] if i["id"] % 2)
    assert f"({len(empty)} images without regions)" in result.output
    return out, empty


def test_images_without_proposals_get_zero_regions(sparse_regions):
    path, empty = sparse_regions
    regions = Regions(path)
    assert regions.num_images == 24 and sorted(set(regions.image_ids.tolist()) - set(empty)) != []
    for image_id in empty:
        image = regions.image(regions.index_of(image_id))
        assert image.boxes.shape == (0, 4) and image.scores.shape == (0,)
        assert image.student_features.shape == (0, regions.student_dim)
        assert image.teacher_features.shape == (0, regions.teacher_dim)


def test_zero_region_images_train_distill_and_evaluate(sparse_regions, demo_data, tmp_path):
    """Every batch holds images without regions (text and the image token still attend); nothing crashes or
    skips them: evaluation covers every image of the split."""
    regions, empty = sparse_regions
    karpathy = demo_data / "karpathy.json"
    common = ["--regions", regions, "--batch-size", 8, "--device", "cpu", "--max-steps", 2]
    teacher = tmp_path / "teacher"
    result = invoke(["finetune", "--task", "caption", "--model", "tiny", "--features", "teacher", "--annotations",
                     karpathy, "--split", "train", *common, "--out", teacher])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke(["distill", "--teacher", teacher, "--student", "tiny", "--task", "caption", "--annotations",
                     karpathy, "--split", "train", "--queue-size", 32, "--log-every", 1, *common,
                     "--out", tmp_path / "student"])  # fmt: skip
    assert result.exit_code == 0, result.output
    log = [json.loads(line) for line in (tmp_path / "student" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(e["loss"]) for e in log if "loss" in e) and len([e for e in log if "loss" in e]) == 2
    out = tmp_path / "eval"
    result = invoke(["eval-caption", "--model", tmp_path / "student", "--regions", regions, "--annotations", karpathy,
                     "--split", "train", "--max-length", 4, "--no-meteor", "--device", "cpu", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    captioned = {p["image_id"] for p in json.loads((out / "predictions.json").read_text())}
    assert captioned == set(_split_ids(demo_data, "train") + _split_ids(demo_data, "restval"))
    assert captioned & set(empty)  # images without regions are captioned too
    dual = tmp_path / "dual"
    result = invoke(["finetune", "--task", "retrieval", "--arch", "dual", "--model", "tiny", "--features", "student",
                     "--annotations", karpathy, "--split", "train", *common, "--out", dual])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke(["eval-retrieval", "--model", dual, "--regions", regions, "--annotations", karpathy, "--split",
                     "train", "--device", "cpu", "--out", tmp_path / "retrieval"])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "retrieval" / "metrics.json").read_text())
    assert all(np.isfinite(v) for v in metrics.values())


# ----------------------------------------------------------------------------------------- zero captions


@pytest.fixture()
def uncaptioned(demo_data, tmp_path) -> tuple[Path, int]:
    """A COCO captions file in which one train image (listed in `images`) has no caption."""
    data = _load(demo_data, "captions.json")
    victim = _split_ids(demo_data, "train")[0]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != victim]
    assert any(i["id"] == victim for i in data["images"])
    return _json(tmp_path / "captions.json", data), victim


def test_training_skips_images_without_captions(uncaptioned, demo_data, demo_regions, tmp_path):
    captions, _ = uncaptioned
    result = invoke(["finetune", "--task", "caption", "--model", "tiny", "--regions", demo_regions, "--annotations",
                     captions, "--max-steps", 1, "--batch-size", 8, "--device", "cpu", "--out", tmp_path / "m"])  # fmt: skip
    assert result.exit_code == 0, result.output
    annotations = json.loads(captions.read_text())["annotations"]
    assert _summary(result)["train_samples"] == len(annotations)  # one sample per caption: the image adds none


def test_evaluation_skips_or_refuses_images_without_captions(uncaptioned, demo_data, demo_regions, tmp_path):
    captions, victim = uncaptioned
    everyone = [i["id"] for i in json.loads(captions.read_text())["images"]]
    # A results file with a caption for it: the official scorers would assert; here exit 3 naming the id.
    results = _json(tmp_path / "all.json", [{"image_id": i, "caption": "a red circle"} for i in everyone])
    refused = invoke(["eval-caption", "--predictions", results, "--annotations", captions, "--no-meteor",
                      "--out", tmp_path / "e1"])  # fmt: skip
    assert_refused(refused, 3, str(results), "have no reference caption", f"ids {victim}")
    assert not (tmp_path / "e1").exists()
    # Without it, the other images are scored.
    rest = [{"image_id": i, "caption": "a red circle"} for i in everyone if i != victim]
    results = _json(tmp_path / "rest.json", rest)
    scored = invoke(["eval-caption", "--predictions", results, "--annotations", captions, "--no-meteor",
                     "--out", tmp_path / "e2"])  # fmt: skip
    assert scored.exit_code == 0, scored.output
    assert len(json.loads((tmp_path / "e2" / "predictions.json").read_text())) == len(everyone) - 1


# ----------------------------------------------------------------------------------------------- duplicate ids


def _duplicate(data: dict, items: str, key: str) -> int:
    """Give the second of `data[items]` the first one's `key`; return that id."""
    data[items][1][key] = data[items][0][key]
    return data[items][0][key]


DUPLICATES: dict[str, tuple[str, str, str, str]] = {
    # case: (file of the demo data, its list and the id to repeat, what the message says)
    "coco-captions-image-ids": ("captions.json", "images", "id", "duplicate image id"),
    "coco-captions-annotation-ids": ("captions.json", "annotations", "id", "duplicate annotation id"),
    "coco-instances-image-ids": ("instances.json", "images", "id", "duplicate image id"),
    "karpathy-image-ids": ("karpathy.json", "images", "cocoid", "duplicate image id"),
    "vqa-question-ids": ("questions.json", "questions", "question_id", "duplicate question id"),
    "vqa-annotation-question-ids": ("annotations.json", "annotations", "question_id",
                                    "duplicate annotation for question id"),
}


@pytest.mark.parametrize("case", list(DUPLICATES))
def test_duplicate_ids_in_data_files_are_exit_3_naming_them(case, demo_data, demo_regions, tmp_path):
    name, items, key, needle = DUPLICATES[case]
    data = _load(demo_data, name)
    duplicate = _duplicate(data, items, key)
    bad = _json(tmp_path / name, data)
    out = tmp_path / "out"
    train = ["--regions", demo_regions, "--max-steps", 1, "--device", "cpu", "--out", out]
    answers = _json(tmp_path / "res.json", [{"question_id": q["question_id"], "answer": "yes"}
                                            for q in _load(demo_data, "questions.json")["questions"]])  # fmt: skip
    if name == "captions.json":
        args = ["finetune", "--task", "caption", "--model", "tiny", "--annotations", bad, *train]
    elif name == "karpathy.json":
        args = ["finetune", "--task", "caption", "--model", "tiny", "--annotations", bad, "--split", "train", *train]
    elif name == "instances.json":
        args = ["extract-regions", "--images", demo_data / "images", "--annotations", bad, "--proposals",
                demo_data / "instances.json", "--student-backbone", TINY_BACKBONE, "--teacher-backbone",
                TINY_TEACHER_BACKBONE, "--out", out]  # fmt: skip
    elif name == "questions.json":
        args = ["eval-vqa", "--predictions", answers, "--questions", bad, "--out", out]
    else:
        args = ["eval-vqa", "--predictions", answers, "--questions", demo_data / "questions.json", "--annotations",
                bad, "--out", out]  # fmt: skip
    assert_refused(invoke(args), 3, str(bad), needle, str(duplicate))
    assert not out.exists()


def test_duplicate_ids_in_results_and_score_files_are_exit_3(demo_data, tmp_path):
    questions = _load(demo_data, "questions.json")["questions"]
    records = [{"question_id": q["question_id"], "answer": "yes"} for q in questions]
    records.append({"question_id": questions[3]["question_id"], "answer": "no"})
    results = _json(tmp_path / "vqa.json", records)
    result = invoke(["eval-vqa", "--predictions", results, "--questions", demo_data / "questions.json",
                     "--annotations", demo_data / "annotations.json", "--out", tmp_path / "e"])  # fmt: skip
    assert_refused(result, 3, str(results), "duplicate answers", str(questions[3]["question_id"]))
    scores = tmp_path / "scores.safetensors"
    image_ids = np.array([5, 6, 5], dtype=np.int64)
    save_file({"scores": np.zeros((3, 3), np.float32), "image_ids": image_ids, "text_image_ids": image_ids},
              str(scores))  # fmt: skip
    result = invoke(["eval-retrieval", "--scores", scores, "--out", tmp_path / "e"])
    assert_refused(result, 3, str(scores), "duplicate image ids", "[5]")
    assert not (tmp_path / "e").exists()


def test_shards_holding_the_same_images_are_exit_3(demo_data, demo_regions, tmp_path):
    base = tmp_path / "regions.safetensors"
    for k in range(2):  # two shards that are both the whole set: every id twice
        shutil.copy(demo_regions, shard_path(base, k, 2))
    result = invoke(["finetune", "--task", "caption", "--model", "tiny", "--regions", base, "--annotations",
                     demo_data / "karpathy.json", "--max-steps", 1, "--device", "cpu", "--out", tmp_path / "m"])  # fmt: skip
    first = ", ".join(str(i) for i in sorted(Regions(demo_regions).image_ids.tolist())[:5])
    assert_refused(result, 3, str(base), f"duplicate image ids across the regions (ids {first}, ...)")
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------------- results of another split


@pytest.mark.parametrize(("results_split", "split"), [("val", "test"), ("test", "val"), ("train", "test")])
def test_caption_results_of_another_split_are_exit_3(demo_data, tmp_path, results_split, split):
    ids = _split_ids(demo_data, results_split)
    results = _json(tmp_path / "res.json", [{"image_id": i, "caption": "a red circle"} for i in ids])
    out = tmp_path / "eval"
    result = invoke(["eval-caption", "--predictions", results, "--annotations", demo_data / "karpathy.json",
                     "--split", split, "--no-meteor", "--out", out])  # fmt: skip
    assert_refused(result, 3, str(results), "not in the ground truth", "wrong split", str(ids[0]))
    assert not out.exists()


def test_vqa_results_of_another_split_are_exit_3(demo_data, tmp_path):
    """Questions of the test images, answers for the questions of the train images."""
    test_images = set(_split_ids(demo_data, "test"))
    data = _load(demo_data, "questions.json")
    test_questions = [q for q in data["questions"] if q["image_id"] in test_images]
    other = [q for q in data["questions"] if q["image_id"] not in test_images]
    questions = _json(tmp_path / "questions.json", {**data, "questions": test_questions})
    answers = _load(demo_data, "annotations.json")
    answers["annotations"] = [a for a in answers["annotations"] if a["image_id"] in test_images]
    annotations = _json(tmp_path / "annotations.json", answers)
    results = _json(tmp_path / "res.json", [{"question_id": q["question_id"], "answer": "yes"} for q in other])
    out = tmp_path / "eval"
    result = invoke(["eval-vqa", "--predictions", results, "--questions", questions, "--annotations", annotations,
                     "--out", out])  # fmt: skip
    line = assert_refused(result, 3, str(results))
    assert str(min(q["question_id"] for q in other)) in line and str(test_questions[0]["question_id"]) in line
    assert not out.exists()
