"""Caption ground truth from either a COCO captions file or a Karpathy split file (detected from the content)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlkd_cli.data.coco import parse_coco_captions, read_json
from vlkd_cli.data.karpathy import is_karpathy, parse_karpathy
from vlkd_cli.errors import InputError, UsageError

SPLIT_KARPATHY_ONLY = "--split applies to Karpathy files only"
"""The message of the usage error raised when a split is asked of a file that has none."""


def load_captions(path: Path, split: str | None = None) -> dict[int, list[str]]:
    """Read captions by image id from a COCO captions or Karpathy split file.

    Args:
        path: The file.
        split: Karpathy files only: keep this split (`train` means `train` + `restval`).

    Returns:
        Image id → its captions (stripped, in file order), for every image of the file (or of the split); an
        image without captions maps to `[]`.

    Raises:
        UsageError: The file does not exist, or `split` is given for a file that is not a Karpathy file.
        InputError: The file is neither format, or is invalid (see the COCO and Karpathy readers).
    """
    path = Path(path)
    return parse_captions(read_json(path), path, split)


def parse_captions(data: Any, path: Path, split: str | None = None) -> dict[int, list[str]]:
    """Read captions from an already parsed document (see `load_captions`).

    Args:
        data: The parsed JSON.
        path: The file it came from, for errors.
        split: As `load_captions`.

    Returns:
        Image id → captions, as `load_captions`.

    Raises:
        UsageError: `split` is given for a file that is not a Karpathy file.
        InputError: As `load_captions`.
    """
    if is_karpathy(data):
        return {image.image_id: image.sentences for image in parse_karpathy(data, path, split)}
    if split is not None:
        raise UsageError(SPLIT_KARPATHY_ONLY, path=path)
    if isinstance(data, dict) and "images" in data and "annotations" in data:
        return parse_coco_captions(data, path)
    raise InputError("not a COCO captions file nor a Karpathy split file", path=path)
