"""Tests of `vlkd_cli.data.captions`: format detection and the `--split` rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vlkd_cli.data.captions import load_captions
from vlkd_cli.errors import InputError, UsageError


def _write(path: Path, data: Any) -> Path:
    """Write JSON and return the path."""
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


COCO = {
    "info": {},
    "images": [{"id": 1, "file_name": "1.jpg"}, {"id": 2, "file_name": "2.jpg"}],
    "annotations": [{"id": 5, "image_id": 2, "caption": "A dog."}, {"id": 6, "image_id": 2, "caption": "Dog."}],
}
KARPATHY = {
    "dataset": "coco",
    "images": [
        {"filepath": "val2014", "filename": "COCO_val2014_000000000001.jpg", "cocoid": 1, "split": "test",
         "sentences": [{"raw": "A cat.", "sentid": 0}]},
        {"filepath": "train2014", "filename": "COCO_train2014_000000000002.jpg", "cocoid": 2, "split": "restval",
         "sentences": [{"raw": "A dog. ", "sentid": 1}, {"raw": "Dog.", "sentid": 2}]},
        {"filepath": "train2014", "filename": "COCO_train2014_000000000003.jpg", "cocoid": 3, "split": "train",
         "sentences": []},
    ],
}


def test_coco_captions(tmp_path: Path) -> None:
    assert load_captions(_write(tmp_path / "c.json", COCO)) == {1: [], 2: ["A dog.", "Dog."]}


def test_karpathy_captions_with_and_without_split(tmp_path: Path) -> None:
    path = _write(tmp_path / "k.json", KARPATHY)
    assert load_captions(path) == {1: ["A cat."], 2: ["A dog.", "Dog."], 3: []}
    assert load_captions(path, split="train") == {2: ["A dog.", "Dog."], 3: []}
    assert load_captions(path, split="test") == {1: ["A cat."]}


def test_split_with_a_coco_file_is_a_usage_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.json", COCO)
    with pytest.raises(UsageError) as caught:
        load_captions(path, split="test")
    assert caught.value.exit_code == 2
    assert str(caught.value) == f"{path}: --split applies to Karpathy files only"


@pytest.mark.parametrize("data", [{"questions": []}, [{"image_id": 1, "caption": "x"}], {"images": []}])
def test_other_files_are_input_errors(tmp_path: Path, data: Any) -> None:
    with pytest.raises(InputError, match="not a COCO captions file nor a Karpathy split file") as caught:
        load_captions(_write(tmp_path / "x.json", data))
    assert caught.value.exit_code == 3


def test_instances_file_given_as_captions_is_named(tmp_path: Path) -> None:
    data = {"images": [{"id": 1}], "annotations": [{"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}],
            "categories": [{"id": 1, "name": "a"}]}
    with pytest.raises(InputError, match="annotation 3 has no 'caption' \\(not a captions file\\?\\)"):
        load_captions(_write(tmp_path / "i.json", data))
