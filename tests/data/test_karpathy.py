"""Tests of `vlkd_cli.data.karpathy`: id rules, splits, sentences, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vlkd_cli.data.karpathy import KarpathyImage, is_karpathy, load_karpathy
from vlkd_cli.errors import InputError, UsageError


def _write(path: Path, data: Any) -> Path:
    """Write JSON and return the path."""
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _entry(imgid: int, cocoid: int | None, split: str, raws: list[str], filepath: str | None = "val2014") -> dict:
    """One entry of dataset_coco.json (without `cocoid`/`filepath` when None, as in dataset_flickr30k.json)."""
    entry: dict[str, Any] = {
        "filename": f"COCO_val2014_{cocoid if cocoid is not None else imgid:012d}.jpg",
        "imgid": imgid,
        "split": split,
        "sentids": list(range(imgid * 10, imgid * 10 + len(raws))),
        "sentences": [
            {"tokens": raw.lower().split(), "raw": raw, "imgid": imgid, "sentid": imgid * 10 + k}
            for k, raw in enumerate(raws)
        ],
    }
    if filepath is not None:
        entry["filepath"] = filepath
    if cocoid is not None:
        entry["cocoid"] = cocoid
    return entry


def _coco_split() -> dict[str, Any]:
    """A dataset_coco.json look-alike with all four splits."""
    return {
        "dataset": "coco",
        "images": [
            _entry(0, 391895, "test", ["A man riding a bike. ", "A cyclist."]),
            _entry(1, 522418, "restval", ["A woman cutting a cake."], filepath="train2014"),
            _entry(2, 184613, "train", ["A boy holding an umbrella."], filepath="train2014"),
            _entry(3, 318219, "val", ["A computer screen."]),
        ],
    }


def test_coco_layout_uses_cocoid_not_imgid(tmp_path: Path) -> None:
    images = load_karpathy(_write(tmp_path / "k.json", _coco_split()))
    assert [image.image_id for image in images] == [391895, 522418, 184613, 318219]
    first = images[0]
    assert first == KarpathyImage(
        391895, "val2014", "COCO_val2014_000000391895.jpg", "test", ["A man riding a bike.", "A cyclist."]
    )
    assert first.relative_path == "val2014/COCO_val2014_000000391895.jpg"


def test_flickr_layout_takes_the_id_from_the_filename(tmp_path: Path) -> None:
    data = {
        "dataset": "flickr30k",
        "images": [
            {"filename": "1000092795.jpg", "imgid": 0, "split": "train", "sentids": [0],
             "sentences": [{"raw": "Two young guys.", "tokens": ["two"], "imgid": 0, "sentid": 0}]},
            {"filename": "10002456.jpg", "imgid": 1, "split": "test", "sentids": [], "sentences": []},
        ],
    }
    images = load_karpathy(_write(tmp_path / "f.json", data))
    assert [(image.image_id, image.filepath, image.relative_path) for image in images] == [
        (1000092795, "", "1000092795.jpg"),
        (10002456, "", "10002456.jpg"),
    ]
    assert images[1].sentences == []


def test_train_means_train_plus_restval(tmp_path: Path) -> None:
    path = _write(tmp_path / "k.json", _coco_split())
    assert [image.image_id for image in load_karpathy(path, split="train")] == [522418, 184613]
    assert [image.image_id for image in load_karpathy(path, split="restval")] == [522418]
    assert [image.image_id for image in load_karpathy(path, split="test")] == [391895]
    assert [image.image_id for image in load_karpathy(path, split="val")] == [318219]


def test_unknown_or_empty_split_lists_the_splits_present(tmp_path: Path) -> None:
    path = _write(tmp_path / "k.json", _coco_split())
    with pytest.raises(InputError, match="no image in split 'testing'; splits present: restval, test, train, val") as e:
        load_karpathy(path, split="testing")
    assert e.value.exit_code == 3
    data = _coco_split()
    data["images"] = [image for image in data["images"] if image["split"] != "val"]
    with pytest.raises(InputError, match="no image in split 'val'; splits present: restval, test, train"):
        load_karpathy(_write(tmp_path / "k2.json", data), split="val")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["images"][1].update(cocoid=391895), "duplicate image id 391895: val2014/COCO_val2014_0"),
        (lambda d: d["images"][1]["sentences"][0].update(raw="  "), "sentence 10 of images\\[1\\] has an empty 'raw'"),
        (lambda d: d["images"][1]["sentences"][0].pop("raw"), "sentence 10 of images\\[1\\] has no 'raw'"),
        (lambda d: d["images"][2].update(cocoid="184613"), "images\\[2\\] 'cocoid' must be an integer"),
        (lambda d: d["images"][2].update(sentences={}), "images\\[2\\] 'sentences' must be a list"),
        (lambda d: d["images"][3].update(filename=""), "images\\[3\\] has an empty 'filename'"),
    ],
)
def test_errors_are_input_errors(tmp_path: Path, mutate: Any, message: str) -> None:
    data = _coco_split()
    mutate(data)
    path = _write(tmp_path / "k.json", data)
    with pytest.raises(InputError, match=message) as caught:
        load_karpathy(path)
    assert caught.value.exit_code == 3
    assert str(caught.value).startswith(f"{path}: ")


def test_filename_without_number_and_no_cocoid_is_an_error(tmp_path: Path) -> None:
    data = {"images": [{"filename": "beach.jpg", "split": "test", "sentences": []}]}
    with pytest.raises(InputError, match="images\\[0\\] has no 'cocoid' and no number at the end of 'beach.jpg'"):
        load_karpathy(_write(tmp_path / "k.json", data))


def test_not_a_karpathy_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a Karpathy split file"):
        load_karpathy(_write(tmp_path / "c.json", {"images": [{"id": 1, "file_name": "1.jpg"}], "annotations": []}))
    with pytest.raises(UsageError):
        load_karpathy(tmp_path / "missing.json")


def test_is_karpathy() -> None:
    assert is_karpathy(_coco_split())
    assert not is_karpathy({"images": [{"id": 1, "file_name": "a.jpg"}]})
    assert not is_karpathy({"images": []})
    assert not is_karpathy([{"filename": "a.jpg"}])
    assert not is_karpathy({"questions": []})
