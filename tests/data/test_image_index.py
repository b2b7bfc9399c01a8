"""Tests of `vlkd_cli.data.image_index`: image ids and paths from annotation files or file names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vlkd_cli.data.image_index import ImageRef, image_id_from_filename, resolve_images
from vlkd_cli.errors import InputError, UsageError


def _write(path: Path, data: Any) -> Path:
    """Write JSON and return the path."""
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _touch(root: Path, *relatives: str) -> Path:
    """Create empty files under a root (the index never decodes them) and return the root."""
    for relative in relatives:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"")
    return root


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """An images root with COCO-style names in two sub-directories and one stray text file."""
    return _touch(
        tmp_path / "images",
        "val2014/COCO_val2014_000000391895.jpg",
        "val2014/COCO_val2014_000000000042.jpg",
        "train2014/COCO_train2014_000000000007.JPG",
        "README.txt",
    )


def _ids_and_paths(refs: list[ImageRef], root: Path) -> list[tuple[int, str]]:
    """Render references as (id, path relative to the root)."""
    return [(ref.image_id, ref.path.relative_to(root).as_posix()) for ref in refs]


def test_reexported_filename_rule() -> None:
    assert image_id_from_filename("COCO_val2014_000000391895.jpg") == 391895


def test_directory_scan_reads_ids_from_file_names(images: Path) -> None:
    assert _ids_and_paths(resolve_images(images), images) == [
        (7, "train2014/COCO_train2014_000000000007.JPG"),
        (42, "val2014/COCO_val2014_000000000042.jpg"),
        (391895, "val2014/COCO_val2014_000000391895.jpg"),
    ]


def test_directory_scan_refuses_a_file_without_number(images: Path) -> None:
    _touch(images, "val2014/beach.png")
    with pytest.raises(InputError) as caught:
        resolve_images(images)
    assert caught.value.exit_code == 3
    assert str(caught.value).startswith(f"{images / 'val2014' / 'beach.png'}: no number at the end of the file name")


def test_directory_scan_refuses_two_files_with_the_same_id(images: Path) -> None:
    _touch(images, "extra/42.png")
    with pytest.raises(InputError, match="image id 42 is ambiguous: both extra/42.png and val2014/COCO_val2014_0000000"
                                         "00042.jpg end with that number"):
        resolve_images(images)


def test_directory_without_images_is_an_input_error(tmp_path: Path) -> None:
    root = _touch(tmp_path / "empty", "notes.txt")
    with pytest.raises(InputError, match="no image files") as caught:
        resolve_images(root)
    assert caught.value.exit_code == 3


def test_missing_images_dir_or_annotations_are_usage_errors(tmp_path: Path, images: Path) -> None:
    with pytest.raises(UsageError, match="images directory does not exist") as caught:
        resolve_images(tmp_path / "nowhere")
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError, match="is not a directory"):
        resolve_images(images / "README.txt")
    with pytest.raises(UsageError, match="does not exist"):
        resolve_images(images, tmp_path / "missing.json")


def test_coco_file_names_under_the_root(tmp_path: Path, images: Path) -> None:
    data = {
        "info": {},
        "licenses": [],
        "images": [
            {"id": 391895, "file_name": "val2014/COCO_val2014_000000391895.jpg", "height": 1, "width": 1},
            {"id": 3, "file_name": "train2014/COCO_train2014_000000000007.JPG"},
        ],
        "annotations": [],
    }
    refs = resolve_images(images, _write(tmp_path / "c.json", data))
    # The id comes from the annotation, not from the file name.
    assert _ids_and_paths(refs, images) == [
        (3, "train2014/COCO_train2014_000000000007.JPG"),
        (391895, "val2014/COCO_val2014_000000391895.jpg"),
    ]


def test_coco_without_file_names_finds_files_by_number(tmp_path: Path, images: Path) -> None:
    refs = resolve_images(images, _write(tmp_path / "c.json", {"images": [{"id": 42}, {"id": 7}]}))
    assert _ids_and_paths(refs, images) == [
        (7, "train2014/COCO_train2014_000000000007.JPG"),
        (42, "val2014/COCO_val2014_000000000042.jpg"),
    ]


def test_coco_without_file_names_refuses_ambiguous_numbers(tmp_path: Path, images: Path) -> None:
    _touch(images, "other/7.png")
    with pytest.raises(InputError, match="image id 7 is ambiguous"):
        resolve_images(images, _write(tmp_path / "c.json", {"images": [{"id": 7}]}))


def test_coco_missing_files_are_counted_and_the_first_named(tmp_path: Path, images: Path) -> None:
    data = {"images": [{"id": 1, "file_name": "val2014/a.jpg"}, {"id": 2, "file_name": "val2014/b.jpg"},
                       {"id": 42, "file_name": "val2014/COCO_val2014_000000000042.jpg"}]}
    path = _write(tmp_path / "c.json", data)
    with pytest.raises(InputError) as caught:
        resolve_images(images, path)
    assert caught.value.exit_code == 3
    assert str(caught.value) == (
        f"{path}: 2 of 3 image files referenced by the annotations are missing (first: {images / 'val2014/a.jpg'})"
    )


def test_coco_missing_ids_by_number(tmp_path: Path, images: Path) -> None:
    path = _write(tmp_path / "c.json", {"images": [{"id": 42}, {"id": 5}, {"id": 6}]})
    with pytest.raises(InputError, match="2 of 3 images referenced by the annotations are missing: .* number 5 "):
        resolve_images(images, path)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}]}, "duplicate image id 1"),
        ({"images": [{"id": 1, "file_name": "../images/val2014/x.jpg"}]}, "escapes the images root"),
        ({"images": [{"id": 1, "file_name": "/etc/hosts"}]}, "escapes the images root"),
        ({"images": [{"file_name": "a.jpg"}]}, "images\\[0\\] has no 'id'"),
        ({"images": []}, "the annotations list no image"),
        ([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}], "not a COCO, Karpathy split or VQA"),
        ({"annotations": [{"id": 1, "image_id": 1, "caption": "x"}]}, "not a COCO, Karpathy split or VQA"),
    ],
)
def test_coco_errors(tmp_path: Path, images: Path, data: Any, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        resolve_images(images, _write(tmp_path / "c.json", data))
    assert caught.value.exit_code == 3


def _karpathy() -> dict[str, Any]:
    """A Karpathy split file over the `images` fixture (one image per split)."""
    def entry(filepath: str, filename: str, split: str, cocoid: int | None) -> dict[str, Any]:
        item = {"filepath": filepath, "filename": filename, "imgid": 0, "split": split, "sentences": []}
        if cocoid is not None:
            item["cocoid"] = cocoid
        return item

    return {
        "dataset": "coco",
        "images": [
            entry("val2014", "COCO_val2014_000000391895.jpg", "test", 391895),
            entry("val2014", "COCO_val2014_000000000042.jpg", "restval", None),
            entry("train2014", "COCO_train2014_000000000007.JPG", "train", 1007),
        ],
    }


def test_karpathy_paths_ids_and_train_split(tmp_path: Path, images: Path) -> None:
    path = _write(tmp_path / "k.json", _karpathy())
    assert _ids_and_paths(resolve_images(images, path), images) == [
        (42, "val2014/COCO_val2014_000000000042.jpg"),
        (1007, "train2014/COCO_train2014_000000000007.JPG"),
        (391895, "val2014/COCO_val2014_000000391895.jpg"),
    ]
    assert [ref.image_id for ref in resolve_images(images, path, split="train")] == [42, 1007]
    assert [ref.image_id for ref in resolve_images(images, path, split="test")] == [391895]


def test_karpathy_unknown_split_and_missing_files(tmp_path: Path, images: Path) -> None:
    path = _write(tmp_path / "k.json", _karpathy())
    with pytest.raises(InputError, match="no image in split 'val'; splits present: restval, test, train"):
        resolve_images(images, path, split="val")
    (images / "val2014" / "COCO_val2014_000000391895.jpg").unlink()
    with pytest.raises(InputError, match="1 of 3 image files referenced by the annotations are missing \\(first: "):
        resolve_images(images, path)
    assert [ref.image_id for ref in resolve_images(images, path, split="train")] == [42, 1007]


def test_split_needs_a_karpathy_file(tmp_path: Path, images: Path) -> None:
    coco = _write(tmp_path / "c.json", {"images": [{"id": 42}]})
    with pytest.raises(UsageError) as caught:
        resolve_images(images, coco, split="test")
    assert caught.value.exit_code == 2
    assert str(caught.value) == f"{coco}: --split applies to Karpathy files only"
    with pytest.raises(UsageError, match="--split applies to Karpathy files only"):
        resolve_images(images, split="test")


def test_vqa_questions_give_the_distinct_images(tmp_path: Path, images: Path) -> None:
    questions = {
        "info": {},
        "task_type": "Open-Ended",
        "questions": [
            {"image_id": 42, "question": "Q1?", "question_id": 420},
            {"image_id": 7, "question": "Q2?", "question_id": 70},
            {"image_id": 42, "question": "Q3?", "question_id": 421},
        ],
    }
    refs = resolve_images(images, _write(tmp_path / "q.json", questions))
    assert _ids_and_paths(refs, images) == [
        (7, "train2014/COCO_train2014_000000000007.JPG"),
        (42, "val2014/COCO_val2014_000000000042.jpg"),
    ]


def test_vqa_annotations_and_missing_vqa_images(tmp_path: Path, images: Path) -> None:
    annotations = {"annotations": [{"question_id": 1, "image_id": 391895}, {"question_id": 2, "image_id": 8}]}
    with pytest.raises(InputError, match="1 of 2 images referenced by the annotations are missing"):
        resolve_images(images, _write(tmp_path / "a.json", annotations))
    annotations["annotations"].pop()
    assert [ref.image_id for ref in resolve_images(images, _write(tmp_path / "a.json", annotations))] == [391895]
