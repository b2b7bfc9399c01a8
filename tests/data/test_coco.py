"""Tests of `vlkd_cli.data.coco`: COCO captions and instances readers, the COCO API, JSON errors."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools.cocoeval import COCOeval

from vlkd_cli.data.coco import coco_api, load_coco_captions, load_coco_instances, read_json
from vlkd_cli.errors import InputError, UsageError


def _write(path: Path, data: Any) -> Path:
    """Write JSON and return the path."""
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _captions() -> dict[str, Any]:
    """A small captions file in the real layout, extra keys included."""
    return {
        "info": {"description": "COCO 2014 Dataset", "year": 2014},
        "licenses": [{"id": 1, "name": "x", "url": "y"}],
        "images": [
            {"id": 391895, "file_name": "COCO_val2014_000000391895.jpg", "height": 360, "width": 640, "license": 1},
            {"id": 7, "file_name": "COCO_val2014_000000000007.jpg"},
            {"id": 9},
        ],
        "annotations": [
            {"id": 1, "image_id": 391895, "caption": "A man riding a bike. "},
            {"id": 2, "image_id": 7, "caption": "A cat."},
            {"id": 3, "image_id": 391895, "caption": "\nA person on a bicycle"},
        ],
    }


def _instances() -> dict[str, Any]:
    """A small instances file in the real layout, extra keys included."""
    return {
        "info": {},
        "licenses": [],
        "images": [
            {"id": 1, "file_name": "000000000001.jpg", "height": 100, "width": 200, "coco_url": "u"},
            {"id": 2, "file_name": "000000000002.jpg", "height": 50, "width": 50},
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}, {"id": 18, "name": "dog"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 18, "bbox": [10, 20, 30, 40], "area": 1200.0, "iscrowd": 0,
             "segmentation": [[10, 20, 40, 20, 40, 60]]},
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [0.5, 1.5, 2.0, 3.0], "iscrowd": 1},
        ],
    }


def test_captions_group_by_image_keep_every_image_and_strip(tmp_path: Path) -> None:
    captions = load_coco_captions(_write(tmp_path / "c.json", _captions()))
    assert captions == {391895: ["A man riding a bike.", "A person on a bicycle"], 7: ["A cat."], 9: []}
    assert list(captions) == [391895, 7, 9]


def test_captions_without_annotation_ids_are_accepted(tmp_path: Path) -> None:
    data = _captions()
    for ann in data["annotations"]:
        del ann["id"]
    assert load_coco_captions(_write(tmp_path / "c.json", data))[7] == ["A cat."]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["annotations"][1].update(caption="   "), "annotation 2 has an empty 'caption'"),
        (lambda d: d["annotations"][1].update(caption=""), "annotation 2 has an empty 'caption'"),
        (lambda d: d["annotations"][1].update(caption=5), "annotation 2 'caption' must be a string"),
        (lambda d: d["annotations"][1].update(image_id=8), "annotation 2 refers to image id 8, which is not in"),
        (lambda d: d["annotations"][1].update(id=1), "duplicate annotation id 1"),
        (lambda d: d["images"][1].update(id=391895), "duplicate image id 391895"),
        (lambda d: d["images"][1].update(id="7"), "images\\[1\\] 'id' must be an integer"),
        (lambda d: d["images"][1].update(id=7.0), "images\\[1\\] 'id' must be an integer"),
        (lambda d: d["annotations"][1].pop("caption"), "annotation 2 has no 'caption' \\(not a captions file\\?\\)"),
        (lambda d: d.pop("images"), "has no 'images' list"),
        (lambda d: d.update(annotations={}), "'annotations' must be a list, found object"),
    ],
)
def test_caption_errors_are_input_errors(tmp_path: Path, mutate: Any, message: str) -> None:
    data = _captions()
    mutate(data)
    path = _write(tmp_path / "c.json", data)
    with pytest.raises(InputError, match=message) as caught:
        load_coco_captions(path)
    assert caught.value.exit_code == 3
    assert str(caught.value).startswith(f"{path}: ")


def test_results_list_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.json", [{"image_id": 1, "caption": "x"}])
    with pytest.raises(InputError, match="found a list \\(a results file\\?\\)"):
        load_coco_captions(path)


def test_read_json_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist") as missing:
        read_json(tmp_path / "nope.json")
    assert missing.value.exit_code == 2
    with pytest.raises(UsageError, match="is a directory"):
        read_json(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [', encoding="utf-8")
    with pytest.raises(InputError, match="invalid JSON: .* at line 1 column 13") as invalid:
        read_json(bad)
    assert invalid.value.exit_code == 3
    binary = tmp_path / "bin.json"
    binary.write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(InputError, match="not UTF-8"):
        read_json(binary)


def test_instances_arrays_are_xyxy_per_image(tmp_path: Path) -> None:
    instances = load_coco_instances(_write(tmp_path / "i.json", _instances()))
    assert instances.categories == [{"id": 1, "name": "person", "supercategory": "person"}, {"id": 18, "name": "dog"}]
    assert instances.images == {
        1: {"file_name": "000000000001.jpg", "height": 100, "width": 200},
        2: {"file_name": "000000000002.jpg", "height": 50, "width": 50},
    }
    assert instances.boxes[1].dtype == np.float32 and instances.boxes[1].shape == (2, 4)
    np.testing.assert_allclose(instances.boxes[1], [[10, 20, 40, 60], [0.5, 1.5, 2.5, 4.5]])
    assert instances.labels[1].dtype == np.int64 and instances.labels[1].tolist() == [18, 1]
    assert instances.iscrowd[1].dtype == bool and instances.iscrowd[1].tolist() == [False, True]
    assert instances.boxes[2].shape == (0, 4)
    assert instances.labels[2].shape == (0,) and instances.iscrowd[2].shape == (0,)
    assert instances.zero_size_ids == []


def test_zero_size_boxes_like_real_coco_are_skipped_and_listed(tmp_path: Path) -> None:
    data = _instances()
    # The shape of annotation 918 of the official instances_train2017.json (cocodataset/cocoapi#355).
    data["annotations"].append(
        {"id": 918, "image_id": 2, "category_id": 1, "bbox": [29.65, 38.33, 1.03, 0.0], "area": 0.0, "iscrowd": 0}
    )
    instances = load_coco_instances(_write(tmp_path / "i.json", data))
    assert instances.zero_size_ids == [918]
    assert instances.boxes[2].shape == (0, 4)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]), "annotation 10 has a degenerate bbox"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3, float("nan")]), "annotation 10 'bbox' must hold 4 finite"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "annotation 10 'bbox' must be a list \\[x, y, w, h\\]"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, "3", 4]), "annotation 10 'bbox' must hold 4 finite"),
        (lambda d: d["annotations"][0].pop("bbox"), "annotation 10 'bbox' must be a list"),
        (lambda d: d["annotations"][0].update(category_id=3), "annotation 10 has category id 3, which is not in"),
        (lambda d: d["annotations"][0].update(image_id=5), "annotation 10 refers to image id 5, which is not in"),
        (lambda d: d["annotations"][1].update(id=10), "duplicate annotation id 10"),
        (lambda d: d["annotations"][1].pop("id"), "annotations\\[1\\] has no 'id'"),
        (lambda d: d["annotations"][0].update(iscrowd=2), "annotation 10 'iscrowd' must be 0 or 1"),
        (lambda d: d["categories"][1].update(id=1), "duplicate category id 1"),
        (lambda d: d["categories"][1].pop("name"), "categories\\[1\\] has no 'name'"),
        (lambda d: d.pop("categories"), "has no 'categories' list"),
        (lambda d: d["images"][1].update(id=1), "duplicate image id 1"),
        (lambda d: d["images"][1].update(height=0), "image 2 has a non-positive height 0"),
    ],
)
def test_instance_errors_are_input_errors(tmp_path: Path, mutate: Any, message: str) -> None:
    data = _instances()
    mutate(data)
    path = tmp_path / "i.json"
    path.write_text(json.dumps(data), encoding="utf-8")  # json.dumps writes NaN, as some tools do
    with pytest.raises(InputError, match=message) as caught:
        load_coco_instances(path)
    assert caught.value.exit_code == 3


def test_coco_api_indexes_the_file_silently(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _instances()
    data["annotations"][1].pop("iscrowd")
    api = coco_api(_write(tmp_path / "i.json", copy.deepcopy(data)))
    assert capsys.readouterr().out == ""
    assert sorted(api.getImgIds()) == [1, 2]
    assert api.getAnnIds(imgIds=[1]) == [10, 11]
    assert api.anns[11]["iscrowd"] == 0 and api.anns[11]["area"] == pytest.approx(6.0)
    assert api.anns[10]["area"] == 1200.0
    assert api.loadCats([18])[0]["name"] == "dog"


def test_coco_api_validates_first(tmp_path: Path) -> None:
    data = _instances()
    data["annotations"][0]["category_id"] = 99
    with pytest.raises(InputError, match="category id 99"):
        coco_api(_write(tmp_path / "i.json", data))


def test_coco_api_works_with_cocoeval(tmp_path: Path) -> None:
    api = coco_api(_write(tmp_path / "i.json", _instances()))
    results = [{"image_id": 1, "category_id": 18, "bbox": [10, 20, 30, 40], "score": 0.9}]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(api, api.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert evaluator.stats[0] > 0.0
