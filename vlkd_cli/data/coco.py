"""Readers of COCO-format JSON: captions and instances, plus the small JSON validators the other readers share.

Every file is parsed and validated here first, so a malformed file fails with one clear line (exit 3) rather than
an assertion or a KeyError deep inside pycocotools. Real COCO files carry extra keys (`info`, `licenses`,
`segmentation`, `area`, `coco_url`, ...); they are tolerated and ignored.

Zero-size boxes: the official `instances_train2017.json` holds two annotations of height 0 (ids 918 and 2206849,
cocodataset/cocoapi#355). They are not errors here: `load_coco_instances` leaves them out of `boxes` and lists
their ids in `CocoInstances.zero_size_ids`; `coco_api` keeps them (they are part of the official ground truth).
Negative or non-finite sizes are errors.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlkd_cli.errors import InputError
from vlkd_cli.jsonfile import read_json  # noqa: F401  (re-exported: the data readers' JSON entry point)

if TYPE_CHECKING:
    from pycocotools.coco import COCO


def expect_dict(value: Any, what: str, path: Path) -> dict[str, Any]:
    """Check that a JSON value is an object.

    Args:
        value: The value.
        what: How to name it in the error, e.g. `"images[3]"`.
        path: The file, for the error.

    Returns:
        The value.

    Raises:
        InputError: It is not an object.
    """
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object, found {_json_type(value)}", path=path)
    return value


def expect_list(container: dict[str, Any], key: str, path: Path, *, what: str | None = None) -> list[Any]:
    """Fetch a required list member of a JSON object.

    Args:
        container: The object.
        key: The member name.
        path: The file, for the error.
        what: How to name the container in the error; the top level when None.

    Returns:
        The list.

    Raises:
        InputError: The member is missing or not a list.
    """
    where = f"{what} " if what else ""
    if key not in container:
        raise InputError(f"{where}has no {key!r} list", path=path)
    value = container[key]
    if not isinstance(value, list):
        raise InputError(f"{where}{key!r} must be a list, found {_json_type(value)}", path=path)
    return value


def expect_int(container: dict[str, Any], key: str, what: str, path: Path) -> int:
    """Fetch a required integer member (booleans and floats are refused).

    Args:
        container: The object.
        key: The member name.
        what: How to name the object in the error, e.g. `"annotations[5]"`.
        path: The file, for the error.

    Returns:
        The integer.

    Raises:
        InputError: The member is missing or not an integer.
    """
    if key not in container:
        raise InputError(f"{what} has no {key!r}", path=path)
    value = container[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} {key!r} must be an integer, found {_short(value)}", path=path)
    return value


def expect_str(container: dict[str, Any], key: str, what: str, path: Path, *, non_empty: bool = False) -> str:
    """Fetch a required string member.

    Args:
        container: The object.
        key: The member name.
        what: How to name the object in the error.
        path: The file, for the error.
        non_empty: Also refuse an empty or whitespace-only string.

    Returns:
        The string.

    Raises:
        InputError: The member is missing, not a string, or empty when `non_empty`.
    """
    if key not in container:
        raise InputError(f"{what} has no {key!r}", path=path)
    value = container[key]
    if not isinstance(value, str):
        raise InputError(f"{what} {key!r} must be a string, found {_short(value)}", path=path)
    if non_empty and not value.strip():
        raise InputError(f"{what} has an empty {key!r}", path=path)
    return value


def parse_image_ids(data: dict[str, Any], path: Path) -> dict[int, dict[str, Any]]:
    """Validate a COCO `images` list and index it by id.

    Args:
        data: The parsed COCO document.
        path: The file, for errors.

    Returns:
        Image id → the image entry, in file order.

    Raises:
        InputError: No `images` list, an entry without an integer `id`, or a duplicate id.
    """
    images: dict[int, dict[str, Any]] = {}
    for index, entry in enumerate(expect_list(data, "images", path)):
        entry = expect_dict(entry, f"images[{index}]", path)
        image_id = expect_int(entry, "id", f"images[{index}]", path)
        if image_id in images:
            raise InputError(f"duplicate image id {image_id} in 'images'", path=path)
        images[image_id] = entry
    return images


def load_coco_captions(path: Path) -> dict[int, list[str]]:
    """Read a COCO captions file (`captions_val2014.json` layout).

    Args:
        path: The file.

    Returns:
        Image id → its captions (stripped, in file order), for every image of `images` in file order; an image
        with no caption maps to `[]` (whether that is acceptable is the caller's choice).

    Raises:
        UsageError: The file does not exist.
        InputError: Invalid JSON or layout, duplicate image or annotation ids, a caption for an unknown image,
            an empty caption.
    """
    return parse_coco_captions(read_json(path), Path(path))


def parse_coco_captions(data: Any, path: Path) -> dict[int, list[str]]:
    """Validate an already parsed COCO captions document (see `load_coco_captions`).

    Args:
        data: The parsed JSON.
        path: The file it came from, for errors.

    Returns:
        Image id → captions, as `load_coco_captions`.

    Raises:
        InputError: As `load_coco_captions`.
    """
    data = _expect_top_object(data, "COCO captions", path)
    captions: dict[int, list[str]] = {image_id: [] for image_id in parse_image_ids(data, path)}
    seen_ids: set[int] = set()
    for index, ann in enumerate(expect_list(data, "annotations", path)):
        ann = expect_dict(ann, f"annotations[{index}]", path)
        name = _annotation_name(ann, index, seen_ids, path)
        image_id = expect_int(ann, "image_id", name, path)
        if "caption" not in ann:
            raise InputError(f"{name} has no 'caption' (not a captions file?)", path=path)
        text = expect_str(ann, "caption", name, path, non_empty=True)
        if image_id not in captions:
            raise InputError(f"{name} refers to image id {image_id}, which is not in 'images'", path=path)
        captions[image_id].append(text.strip())
    return captions


@dataclass
class CocoInstances:
    """A COCO instances file, as arrays per image.

    Attributes:
        categories: `{"id", "name"}` (and `"supercategory"` when present) per category, in file order.
        images: Image id → `{"file_name", "height", "width"}` (each key only when the file has it), file order.
        boxes: Image id → (n, 4) float32 xyxy boxes in pixels; every image has an entry, possibly (0, 4).
        labels: Image id → (n,) int64 category ids, aligned with `boxes`.
        iscrowd: Image id → (n,) bool crowd flags, aligned with `boxes`.
        zero_size_ids: Ids of annotations left out of `boxes` because their width or height is 0.
    """

    categories: list[dict[str, Any]]
    images: dict[int, dict[str, Any]]
    boxes: dict[int, np.ndarray]
    labels: dict[int, np.ndarray]
    iscrowd: dict[int, np.ndarray]
    zero_size_ids: list[int] = field(default_factory=list)


def load_coco_instances(path: Path) -> CocoInstances:
    """Read a COCO instances file (`instances_val2017.json` layout); `bbox` xywh becomes xyxy.

    Args:
        path: The file.

    Returns:
        The categories, images and per-image boxes, labels and crowd flags.

    Raises:
        UsageError: The file does not exist.
        InputError: Invalid JSON or layout, duplicate ids, a box with a negative or non-finite value, an
            annotation of an unknown image or category.
    """
    return parse_coco_instances(read_json(path), Path(path))


def parse_coco_instances(data: Any, path: Path) -> CocoInstances:
    """Validate an already parsed COCO instances document (see `load_coco_instances`).

    Args:
        data: The parsed JSON.
        path: The file it came from, for errors.

    Returns:
        The instances, as `load_coco_instances`.

    Raises:
        InputError: As `load_coco_instances`.
    """
    data = _expect_top_object(data, "COCO instances", path)
    images = parse_image_ids(data, path)
    categories = _parse_categories(data, path)
    known_categories = {category["id"] for category in categories}
    per_image: dict[int, list[tuple[list[float], int, bool]]] = {image_id: [] for image_id in images}
    zero_size: list[int] = []
    seen_ids: set[int] = set()
    for index, ann in enumerate(expect_list(data, "annotations", path)):
        ann = expect_dict(ann, f"annotations[{index}]", path)
        ann_id = expect_int(ann, "id", f"annotations[{index}]", path)
        if ann_id in seen_ids:
            raise InputError(f"duplicate annotation id {ann_id}", path=path)
        seen_ids.add(ann_id)
        instance = _parse_instance(ann, f"annotation {ann_id}", images, known_categories, path)
        if instance is None:
            zero_size.append(ann_id)
        else:
            per_image[instance[0]].append(instance[1:])
    return CocoInstances(
        categories=categories,
        images={image_id: _image_fields(entry, image_id, path) for image_id, entry in images.items()},
        boxes={i: np.array([r[0] for r in rows], dtype=np.float32).reshape(-1, 4) for i, rows in per_image.items()},
        labels={i: np.array([r[1] for r in rows], dtype=np.int64) for i, rows in per_image.items()},
        iscrowd={i: np.array([r[2] for r in rows], dtype=bool) for i, rows in per_image.items()},
        zero_size_ids=zero_size,
    )


def coco_api(path: Path) -> COCO:
    """Build a `pycocotools.coco.COCO` ground truth from an instances file, for `COCOeval`.

    The file is validated as `load_coco_instances` does first. Annotations missing the `area` or `iscrowd` that
    `COCOeval` needs get `w * h` and `0`. pycocotools' progress prints are silenced.

    Args:
        path: The instances file.

    Returns:
        The indexed COCO object.

    Raises:
        UsageError: The file does not exist.
        InputError: The file is not a valid instances file.
    """
    from pycocotools.coco import COCO

    path = Path(path)
    data = read_json(path)
    parse_coco_instances(data, path)
    for ann in data["annotations"]:
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO()
        api.dataset = data
        api.createIndex()
    return api


def _parse_categories(data: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """Validate the `categories` list of an instances file.

    Args:
        data: The parsed document.
        path: The file, for errors.

    Returns:
        `{"id", "name"[, "supercategory"]}` per category.

    Raises:
        InputError: A missing list, a category without integer id or string name, a duplicate id.
    """
    categories: list[dict[str, Any]] = []
    seen: set[int] = set()
    for index, entry in enumerate(expect_list(data, "categories", path)):
        entry = expect_dict(entry, f"categories[{index}]", path)
        category_id = expect_int(entry, "id", f"categories[{index}]", path)
        if category_id in seen:
            raise InputError(f"duplicate category id {category_id}", path=path)
        seen.add(category_id)
        category = {"id": category_id, "name": expect_str(entry, "name", f"categories[{index}]", path)}
        if isinstance(entry.get("supercategory"), str):
            category["supercategory"] = entry["supercategory"]
        categories.append(category)
    return categories


def _parse_instance(
    ann: dict[str, Any], name: str, images: dict[int, Any], categories: set[int], path: Path
) -> tuple[int, list[float], int, bool] | None:
    """Validate one instance annotation.

    Args:
        ann: The annotation object.
        name: How to name it in errors, e.g. `"annotation 42"`.
        images: The known image ids.
        categories: The known category ids.
        path: The file, for errors.

    Returns:
        (image id, xyxy box, category id, crowd flag), or None for a zero-width or zero-height box.

    Raises:
        InputError: Unknown image or category, a malformed or negative box, a bad `iscrowd`.
    """
    image_id = expect_int(ann, "image_id", name, path)
    if image_id not in images:
        raise InputError(f"{name} refers to image id {image_id}, which is not in 'images'", path=path)
    category_id = expect_int(ann, "category_id", name, path)
    if category_id not in categories:
        raise InputError(f"{name} has category id {category_id}, which is not in 'categories'", path=path)
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, float):
        raise InputError(f"{name} 'iscrowd' must be 0 or 1, found {_short(crowd)}", path=path)
    x, y, w, h = _parse_bbox(ann.get("bbox"), name, path)
    if w == 0 or h == 0:
        return None
    return image_id, [x, y, x + w, y + h], category_id, bool(crowd)


def _parse_bbox(bbox: Any, name: str, path: Path) -> tuple[float, float, float, float]:
    """Validate a COCO `[x, y, w, h]` box.

    Args:
        bbox: The value of `bbox`.
        name: How to name the annotation in errors.
        path: The file, for errors.

    Returns:
        The four numbers as floats.

    Raises:
        InputError: Not four finite numbers, or a negative width or height.
    """
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise InputError(f"{name} 'bbox' must be a list [x, y, w, h], found {_short(bbox)}", path=path)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in bbox):
        raise InputError(f"{name} 'bbox' must hold 4 finite numbers, found {_short(bbox)}", path=path)
    x, y, w, h = (float(v) for v in bbox)
    if w < 0 or h < 0:
        raise InputError(f"{name} has a degenerate bbox (negative width or height): {bbox}", path=path)
    return x, y, w, h


def _image_fields(entry: dict[str, Any], image_id: int, path: Path) -> dict[str, Any]:
    """Keep and check the `file_name`, `height` and `width` of an `images` entry.

    Args:
        entry: The image object.
        image_id: Its id, for errors.
        path: The file, for errors.

    Returns:
        The subset of those keys the entry has.

    Raises:
        InputError: A non-string file name, or a non-positive or non-integer size.
    """
    fields: dict[str, Any] = {}
    if "file_name" in entry:
        fields["file_name"] = expect_str(entry, "file_name", f"image {image_id}", path, non_empty=True)
    for key in ("height", "width"):
        if key in entry:
            value = expect_int(entry, key, f"image {image_id}", path)
            if value <= 0:
                raise InputError(f"image {image_id} has a non-positive {key} {value}", path=path)
            fields[key] = value
    return fields


def _annotation_name(ann: dict[str, Any], index: int, seen_ids: set[int], path: Path) -> str:
    """Name an annotation for errors by its optional `id`, checking that id is an integer and unique.

    Args:
        ann: The annotation object.
        index: Its position in `annotations`.
        seen_ids: Ids seen so far; updated.
        path: The file, for errors.

    Returns:
        `"annotation <id>"`, or `"annotations[<index>]"` when it has no id.

    Raises:
        InputError: A non-integer or duplicate id.
    """
    if "id" not in ann:
        return f"annotations[{index}]"
    ann_id = expect_int(ann, "id", f"annotations[{index}]", path)
    if ann_id in seen_ids:
        raise InputError(f"duplicate annotation id {ann_id}", path=path)
    seen_ids.add(ann_id)
    return f"annotation {ann_id}"


def _expect_top_object(data: Any, kind: str, path: Path) -> dict[str, Any]:
    """Check that a document's top level is an object, with a hint when it is a results list.

    Args:
        data: The parsed JSON.
        kind: The expected kind, for the error.
        path: The file, for errors.

    Returns:
        The document.

    Raises:
        InputError: The top level is not an object.
    """
    if isinstance(data, list):
        raise InputError(f"expected a {kind} file (a JSON object), found a list (a results file?)", path=path)
    return expect_dict(data, f"the top level of a {kind} file", path)


def _json_type(value: Any) -> str:
    """Name the JSON type of a value.

    Args:
        value: A parsed JSON value.

    Returns:
        `object`, `array`, `string`, `number`, `boolean` or `null`.
    """
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _short(value: Any, limit: int = 60) -> str:
    """Render a JSON value briefly for an error message.

    Args:
        value: The value.
        limit: Maximum length.

    Returns:
        Its JSON text, cut with `...` beyond `limit` characters.
    """
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
