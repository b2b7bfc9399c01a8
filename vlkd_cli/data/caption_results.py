"""COCO caption results files: `[{"image_id": int, "caption": str}, ...]` (what the COCO server and
pycocotools' `COCO.loadRes` take). Extra keys (e.g. `id`) are allowed and ignored.

`loadRes` asserts that the results are a subset of the ground truth, and the official scorers assert exactly one
caption per image; here both are one-line errors (exit 3) that name the offending ids.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from vlkd_cli.errors import InputError
from vlkd_cli.jsonfile import read_json


def _few(ids: Collection[int], limit: int = 5) -> str:
    shown = sorted(ids)[:limit]
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(str(i) for i in shown) + more


def read_caption_results(path: Path) -> dict[int, str]:
    """Read a caption results file.

    Args:
        path: The JSON file.

    Returns:
        image id -> caption, in file order.

    Raises:
        InputError: Not a non-empty list of {image_id: int, caption: str}, or an image id given twice.
    """
    path = Path(path)
    records = read_json(path)
    if not isinstance(records, list) or not records:
        raise InputError('a caption results file must be a non-empty JSON list of {"image_id", "caption"}', path)
    captions: dict[int, str] = {}
    duplicates: set[int] = set()
    for n, record in enumerate(records):
        if not isinstance(record, dict) or "image_id" not in record or "caption" not in record:
            raise InputError(f'entry {n} is not an object with "image_id" and "caption"', path)
        image_id, caption = record["image_id"], record["caption"]
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            raise InputError(f"entry {n}: image_id must be an integer, got {image_id!r}", path)
        if not isinstance(caption, str):
            raise InputError(f"entry {n}: caption must be a string, got {type(caption).__name__}", path)
        if image_id in captions:
            duplicates.add(image_id)
        captions[image_id] = caption
    if duplicates:
        raise InputError(f"{len(duplicates)} images have more than one caption (ids {_few(duplicates)})", path)
    return captions


def check_caption_coverage(results: Mapping[int, str], gt_ids: Collection[int], path: Path, *,
                           require_all: bool) -> None:  # fmt: skip
    """Results must be for ground-truth images only; with `require_all` (a Karpathy split) for every one of them.

    `gt_ids` are the images that have at least one reference caption: a result for an image listed in the ground
    truth without any caption cannot be scored (the official scorers assert on it) and is refused too.

    Raises:
        InputError: Names the count and the first ids of the extra (or missing) images.
    """
    known = set(gt_ids)
    extra = [i for i in results if i not in known]
    if extra:
        raise InputError(
            f"{len(extra)} results are for images that are not in the ground truth or have no reference caption "
            f"(ids {_few(extra)}): wrong split or wrong annotation file?",
            path,
        )
    if require_all:
        missing = known.difference(results)
        if missing:
            raise InputError(f"{len(missing)} images of the split have no result (ids {_few(missing)})", path)


def caption_records(captions: Mapping[int, str]) -> list[dict]:
    """The results format as a list, image ids ascending."""
    return [{"image_id": int(i), "caption": captions[i]} for i in sorted(captions)]
