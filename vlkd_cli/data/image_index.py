"""Which images a command reads, with their ids: from an annotation file, or from the file names of a directory.

With an annotation file (detected from its content):

- COCO (`images: [{"id", "file_name"?}]`): every image; path = `file_name` under the images root, or, without
  `file_name`, the one file under the root whose name ends with the id's number.
- Karpathy split: id = `cocoid`, else the number at the end of `filename`; path = `filepath/filename` under the
  root; `split` filters (`train` = `train` + `restval`).
- VQA v2 questions (or annotations): the images the questions are about, found by number like COCO without
  `file_name`.

Without one: every image file under the root (recursively), id = the number at the end of its name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkd_cli.data.captions import SPLIT_KARPATHY_ONLY
from vlkd_cli.data.coco import expect_dict, expect_int, expect_str, parse_image_ids, read_json
from vlkd_cli.data.images import IMAGE_EXTENSIONS, image_id_from_filename, list_image_files, safe_join
from vlkd_cli.data.karpathy import is_karpathy, parse_karpathy
from vlkd_cli.data.vqa import is_vqa_annotations, is_vqa_questions
from vlkd_cli.errors import InputError, UsageError

__all__ = ["ImageRef", "image_id_from_filename", "resolve_images"]


@dataclass(frozen=True)
class ImageRef:
    """An image to read.

    Attributes:
        image_id: Its id (COCO image id).
        path: Its file.
    """

    image_id: int
    path: Path


def resolve_images(images_dir: Path, annotations: Path | None = None, split: str | None = None) -> list[ImageRef]:
    """List the images a command reads, with their ids, sorted by id.

    Args:
        images_dir: The images root (`--images`).
        annotations: A COCO, Karpathy or VQA v2 questions file naming the images; None to use every image file
            under `images_dir`.
        split: Karpathy files only: keep this split (`train` means `train` + `restval`).

    Returns:
        One reference per image, sorted by image id; every path is an existing file.

    Raises:
        UsageError: `images_dir` or `annotations` does not exist, or `split` is given without a Karpathy file.
        InputError: The annotation file is invalid or lists no image, duplicate ids, referenced files are missing,
            a file name escapes the root, or (without annotations) a file name without number, two files with the
            same id, or no image file at all.
    """
    images_dir = Path(images_dir)
    _check_images_dir(images_dir)
    if annotations is None:
        if split is not None:
            raise UsageError(f"{SPLIT_KARPATHY_ONLY} (no annotations file given)")
        return _from_directory(images_dir)
    annotations = Path(annotations)
    refs = _from_annotations(images_dir, read_json(annotations), annotations, split)
    if not refs:
        raise InputError("the annotations list no image", path=annotations)
    return sorted(refs, key=lambda ref: ref.image_id)


def _check_images_dir(images_dir: Path) -> None:
    """Check that the images root exists and is a directory.

    Args:
        images_dir: The images root.

    Raises:
        UsageError: It does not exist or is not a directory.
    """
    if not images_dir.exists():
        raise UsageError("images directory does not exist", path=images_dir)
    if not images_dir.is_dir():
        raise UsageError("is not a directory (expected the images directory)", path=images_dir)


def _from_annotations(images_dir: Path, data: Any, path: Path, split: str | None) -> list[ImageRef]:
    """Dispatch on the annotation format.

    Args:
        images_dir: The images root.
        data: The parsed annotation file.
        path: The annotation file, for errors.
        split: The requested Karpathy split.

    Returns:
        The references, unsorted.

    Raises:
        UsageError: `split` with a file that is not a Karpathy file.
        InputError: An unrecognised or invalid file, missing images.
    """
    if is_karpathy(data):
        return _from_karpathy(images_dir, data, path, split)
    if split is not None:
        raise UsageError(SPLIT_KARPATHY_ONLY, path=path)
    if isinstance(data, dict) and "images" in data:
        return _from_coco(images_dir, data, path)
    if is_vqa_questions(data):
        return _by_number(images_dir, _vqa_image_ids(data, "questions", path), path)
    if is_vqa_annotations(data):
        return _by_number(images_dir, _vqa_image_ids(data, "annotations", path), path)
    raise InputError("not a COCO, Karpathy split or VQA v2 questions file (no 'images' or 'questions')", path=path)


def _from_karpathy(images_dir: Path, data: Any, path: Path, split: str | None) -> list[ImageRef]:
    """References from a Karpathy split file: `filepath/filename` under the root.

    Args:
        images_dir: The images root.
        data: The parsed file.
        path: The file, for errors.
        split: The split to keep, or None for all.

    Returns:
        The references.

    Raises:
        InputError: An invalid file, an empty split, an escaping name, missing files.
    """
    refs = [
        ImageRef(image.image_id, safe_join(images_dir, image.relative_path))
        for image in parse_karpathy(data, path, split)
    ]
    _check_files_exist([ref.path for ref in refs], path)
    return refs


def _from_coco(images_dir: Path, data: dict[str, Any], path: Path) -> list[ImageRef]:
    """References from a COCO `images` list: `file_name` under the root, or the file ending in the id's number.

    Args:
        images_dir: The images root.
        data: The parsed file.
        path: The file, for errors.

    Returns:
        The references.

    Raises:
        InputError: An invalid `images` list, an escaping name, missing or ambiguous files.
    """
    named: list[ImageRef] = []
    unnamed: list[int] = []
    for image_id, entry in parse_image_ids(data, path).items():
        if "file_name" in entry:
            file_name = expect_str(entry, "file_name", f"image {image_id}", path, non_empty=True)
            named.append(ImageRef(image_id, safe_join(images_dir, file_name)))
        else:
            unnamed.append(image_id)
    _check_files_exist([ref.path for ref in named], path)
    return named + (_by_number(images_dir, unnamed, path) if unnamed else [])


def _vqa_image_ids(data: dict[str, Any], key: str, path: Path) -> list[int]:
    """The distinct image ids of a VQA questions or annotations list, in first-seen order.

    Args:
        data: The parsed file.
        key: `questions` or `annotations`.
        path: The file, for errors.

    Returns:
        The image ids.

    Raises:
        InputError: An entry that is not an object or has no integer `image_id`.
    """
    ids: dict[int, None] = {}
    for index, entry in enumerate(data[key]):
        ids[expect_int(expect_dict(entry, f"{key}[{index}]", path), "image_id", f"{key}[{index}]", path)] = None
    return list(ids)


def _by_number(images_dir: Path, image_ids: list[int], path: Path) -> list[ImageRef]:
    """Find each id's file under the root by the number at the end of file names.

    Args:
        images_dir: The images root.
        image_ids: The ids to find.
        path: The annotation file, for errors.

    Returns:
        The references.

    Raises:
        InputError: Two files end with a wanted id's number, or some ids have no file.
    """
    index = _index_by_number(list_image_files(images_dir))
    refs: list[ImageRef] = []
    missing: list[int] = []
    for image_id in image_ids:
        candidates = index.get(image_id, [])
        if len(candidates) > 1:
            raise InputError(_ambiguous(image_id, candidates, images_dir), path=images_dir)
        if candidates:
            refs.append(ImageRef(image_id, candidates[0]))
        else:
            missing.append(image_id)
    if missing:
        raise InputError(
            f"{len(missing)} of {len(image_ids)} images referenced by the annotations are missing: no file under "
            f"{images_dir} has a name ending in the number {missing[0]} (first missing image id)",
            path=path,
        )
    return refs


def _from_directory(images_dir: Path) -> list[ImageRef]:
    """References for every image file under the root, the id read from each file name.

    Args:
        images_dir: The images root.

    Returns:
        The references, sorted by id.

    Raises:
        InputError: No image file, a name without number, or two files with the same id.
    """
    files = list_image_files(images_dir)
    if not files:
        extensions = " ".join(sorted(IMAGE_EXTENSIONS))
        raise InputError(f"no image files ({extensions}) under the images directory", path=images_dir)
    for file in files:
        if image_id_from_filename(file.name) is None:
            raise InputError(
                "no number at the end of the file name to use as image id (give an annotations file)", path=file
            )
    index = _index_by_number(files)
    refs: list[ImageRef] = []
    for image_id in sorted(index):
        if len(index[image_id]) > 1:
            raise InputError(_ambiguous(image_id, index[image_id], images_dir), path=images_dir)
        refs.append(ImageRef(image_id, index[image_id][0]))
    return refs


def _index_by_number(files: list[Path]) -> dict[int, list[Path]]:
    """Group image files by the number at the end of their names (files without one are left out).

    Args:
        files: Image files.

    Returns:
        Id → the files whose names end with it, in the given order.
    """
    index: dict[int, list[Path]] = {}
    for file in files:
        image_id = image_id_from_filename(file.name)
        if image_id is not None:
            index.setdefault(image_id, []).append(file)
    return index


def _check_files_exist(paths: list[Path], annotations: Path) -> None:
    """Check that every referenced image file exists.

    Args:
        paths: The referenced files.
        annotations: The annotation file, for the error.

    Raises:
        InputError: Naming how many are missing and the first one.
    """
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} of {len(paths)} image files referenced by the annotations are missing "
            f"(first: {missing[0]})",
            path=annotations,
        )


def _ambiguous(image_id: int, candidates: list[Path], images_dir: Path) -> str:
    """Describe two or more files claiming the same image id.

    Args:
        image_id: The id.
        candidates: The files.
        images_dir: The root, to shorten the names.

    Returns:
        A one-line message naming the first two files.
    """
    first, second = (candidate.relative_to(images_dir).as_posix() for candidate in candidates[:2])
    return f"image id {image_id} is ambiguous: both {first} and {second} end with that number"


def image_list_sha256(refs: list[ImageRef]) -> str:
    """Identity of the image list (ids, paths, file sizes) without hashing every image's bytes."""
    digest = hashlib.sha256()
    for ref in refs:
        digest.update(f"{ref.image_id}\t{ref.path.name}\t{ref.path.stat().st_size}\n".encode())
    return digest.hexdigest()
