"""The demo data generator: determinism, file formats, box/pixel agreement, weak priors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlkd_cli.data.demo import image_file_name, make_demo_data
from vlkd_cli.data.demo_scenes import COLORS, SHAPES
from vlkd_cli.errors import UsageError
from vlkd_cli.eval.cider import simple_tokenize

FILES = ("instances.json", "captions.json", "questions.json", "annotations.json", "karpathy.json", "priors.json")


def _digest(root: Path) -> dict[str, str]:
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _load(root: Path, name: str) -> dict:
    return json.loads((root / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[int]]:
    out = tmp_path_factory.mktemp("demo")
    calls: list[int] = []
    priors = make_demo_data(out, num_images=300, image_size=96, seed=3, progress=calls.append)
    return out, priors, calls


def test_files_and_progress(demo: tuple[Path, dict, list[int]]) -> None:
    out, priors, calls = demo
    for name in FILES:
        assert (out / name).is_file()
    assert calls == list(range(1, 301))
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == [image_file_name(i) for i in range(1, 301)]
    assert names[0] == "demo_000000000001.png"
    assert not [p for p in out.rglob(".*tmp*")]
    assert _load(out, "priors.json") == json.loads(json.dumps(priors))
    assert priors["num_images"] == 300


def test_deterministic_bytes(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    make_demo_data(first, num_images=12, image_size=64, seed=5)
    make_demo_data(second, num_images=12, image_size=64, seed=5)
    make_demo_data(other, num_images=12, image_size=64, seed=6)
    assert _digest(first) == _digest(second)
    assert _digest(first) != _digest(other)


def test_coco_instances_load_and_boxes_match_pixels(demo: tuple[Path, dict, list[int]]) -> None:
    from pycocotools.coco import COCO

    out, _, _ = demo
    coco = COCO(str(out / "instances.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(SHAPES)
    assert all(c["supercategory"] == "shape" for c in coco.dataset["categories"])
    palette = {name: np.array(rgb) for name, rgb in COLORS.items()}
    for image_id in coco.getImgIds()[:120]:
        info = coco.loadImgs(image_id)[0]
        pixels = np.asarray(Image.open(out / "images" / info["file_name"]).convert("RGB")).astype(int)
        assert pixels.shape == (info["height"], info["width"], 3) == (96, 96, 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert 1 <= len(anns) <= 4
        covered = np.zeros(pixels.shape[:2], dtype=bool)
        for ann in anns:
            x, y, w, h = (int(v) for v in ann["bbox"])
            assert ann["iscrowd"] == 0 and ann["area"] > 0 and w >= 0.12 * 96 and h >= 0.1 * 96
            assert x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96
            color = palette[ann["attributes"]["color"]]
            exact = np.all(pixels[y : y + h, x : x + w] == color, axis=-1)
            # Tight: fully covered pixels come within 3 px of every side of the box (edges are anti-aliased, and a
            # star's tip is thinner than a pixel), and fill a good part of it.
            assert exact[:3].any() and exact[-3:].any() and exact[:, :3].any() and exact[:, -3:].any()
            assert exact.mean() > 0.25
            if coco.cats[ann["category_id"]]["name"] != "ring":
                assert np.array_equal(pixels[y + h // 2, x + w // 2], color)
            assert coco.annToMask(ann).sum() > 0.5 * ann["area"]
            covered[y : y + h, x : x + w] = True
        # No pixel of an object colour outside every box (backgrounds never use them).
        for ann in anns:
            color = palette[ann["attributes"]["color"]]
            assert not np.all(pixels[~covered] == color, axis=-1).any()


def test_captions(demo: tuple[Path, dict, list[int]]) -> None:
    from pycocotools.coco import COCO

    out, _, _ = demo
    coco = COCO(str(out / "captions.json"))
    texts = []
    for image_id in coco.getImgIds():
        caps = [a["caption"] for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id))]
        assert len(caps) == 5 and len(set(caps)) == 5
        texts += caps
    words = {w for t in texts for w in simple_tokenize(t)}
    for needed in ("left", "above", "below", "two", "three", "background", "there", "image", "big", "small"):
        assert needed in words
    assert len(set(texts)) > 0.8 * len(texts)


def test_vqa_files(demo: tuple[Path, dict, list[int]]) -> None:
    out, _, _ = demo
    questions, annotations = _load(out, "questions.json"), _load(out, "annotations.json")
    for payload in (questions, annotations):
        assert payload["task_type"] == "Open-Ended" and payload["data_type"] == "mscoco"
        assert {"info", "license", "data_subtype"} <= set(payload)
    qs, anns = questions["questions"], annotations["annotations"]
    assert [q["question_id"] for q in qs] == [a["question_id"] for a in anns]
    assert len({q["question_id"] for q in qs}) == len(qs)
    per_image: dict[int, int] = {}
    for q, a in zip(qs, anns):
        per_image[q["image_id"]] = per_image.get(q["image_id"], 0) + 1
        assert q["question"].startswith(a["question_type"]) and q["question"].endswith("?")
        assert [x["answer_id"] for x in a["answers"]] == list(range(1, 11))
        assert {x["answer_confidence"] for x in a["answers"]} <= {"yes", "maybe", "no"}
        texts = [x["answer"] for x in a["answers"]]
        assert texts.count(a["multiple_choice_answer"]) == max(texts.count(t) for t in texts) >= 7
        assert a["answer_type"] in ("yes/no", "number", "other")
    assert set(per_image) == set(range(1, 301))
    assert all(3 <= n <= 5 for n in per_image.values())
    mc = [a["multiple_choice_answer"] for a in anns]
    yes_no = [m for m, a in zip(mc, anns) if a["answer_type"] == "yes/no"]
    assert abs(yes_no.count("yes") / len(yes_no) - 0.5) < 0.05
    counts = [m for m, a in zip(mc, anns) if a["answer_type"] == "number"]
    assert {"1", "2", "3", "4"} <= set(counts) and max(counts.count(c) for c in set(counts)) < 0.4 * len(counts)


def test_karpathy_splits(demo: tuple[Path, dict, list[int]]) -> None:
    out, priors, _ = demo
    karpathy = _load(out, "karpathy.json")
    assert karpathy["dataset"] == "coco"
    images = karpathy["images"]
    assert [im["imgid"] for im in images] == list(range(300))
    assert sorted(im["cocoid"] for im in images) == list(range(1, 301))
    splits = [im["split"] for im in images]
    assert set(splits) == {"train", "restval", "val", "test"}
    assert priors["splits"] == {s: splits.count(s) for s in sorted(set(splits))}
    assert splits.count("test") == splits.count("val") == 30
    captions = _load(out, "captions.json")["annotations"]
    sentids = [s for im in images for s in im["sentids"]]
    assert sorted(sentids) == list(range(len(captions)))
    for im in images:
        assert im["filename"] == image_file_name(im["cocoid"]) and im["filepath"] in ("", ".")
        assert len(im["sentences"]) == 5
        for sent in im["sentences"]:
            assert sent["imgid"] == im["imgid"] and sent["tokens"] == simple_tokenize(sent["raw"])
            assert all(t == t.lower() and t.isalnum() for t in sent["tokens"])


def test_small_set_has_every_split(tmp_path: Path) -> None:
    make_demo_data(tmp_path, num_images=10, image_size=32, seed=0)
    splits = [im["split"] for im in _load(tmp_path, "karpathy.json")["images"]]
    assert set(splits) == {"train", "restval", "val", "test"}


def test_priors_are_weak(demo: tuple[Path, dict, list[int]]) -> None:
    _, priors, _ = demo
    vqa = priors["vqa_prior_accuracy"]
    assert vqa["num_test_questions"] > 80
    assert vqa["overall"] < 50.0
    assert vqa["per_answer_type"]["other"] < 35.0 and vqa["per_answer_type"]["number"] < 45.0
    assert 0.0 < priors["caption_largest_object_cider"] < 3.0


@pytest.mark.parametrize(
    "kwargs",
    [{"num_images": 9}, {"num_images": 0}, {"image_size": 31}, {"image_size": 2049}, {"seed": -1}, {"num_images": 2.5}],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(UsageError):
        make_demo_data(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_out_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(UsageError):
        make_demo_data(target, num_images=10)
