"""Reader of Karpathy split files (`dataset_coco.json`, `dataset_flickr30k.json`, `dataset_flickr8k.json`).

Layout: `{"images": [{"filepath"?, "filename", "imgid", "split", "sentids", "sentences": [{"raw", "tokens",
...}], "cocoid"?}], "dataset": "coco"}`. The image id is `cocoid` when present, else the number at the end of
`filename` (Flickr30k: `1000092795.jpg` → 1000092795); `imgid` is only a position in the file and is never used.
The image path is `filepath/filename` under the images root (`filename` alone when there is no `filepath`).
`--split train` means `train` + `restval` (the 113k-image Karpathy training set of COCO).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkd_cli.data.coco import expect_dict, expect_int, expect_list, expect_str, read_json
from vlkd_cli.data.images import image_id_from_filename
from vlkd_cli.errors import InputError

SPLIT_ALIASES: dict[str, frozenset[str]] = {"train": frozenset({"train", "restval"})}
"""Split names that select more than one stored split."""


@dataclass
class KarpathyImage:
    """One image of a Karpathy split file.

    Attributes:
        image_id: `cocoid`, or the number at the end of `filename`.
        filepath: The sub-directory under the images root (`""` for Flickr).
        filename: The file name.
        split: `train`, `restval`, `val` or `test` (whatever the file says).
        sentences: The `raw` strings of its `sentences`, stripped, in file order.
    """

    image_id: int
    filepath: str
    filename: str
    split: str
    sentences: list[str]

    @property
    def relative_path(self) -> str:
        """The image path relative to the images root: `filepath/filename`, or `filename` alone."""
        return f"{self.filepath}/{self.filename}" if self.filepath else self.filename


def is_karpathy(obj: Any) -> bool:
    """Tell whether a parsed JSON document looks like a Karpathy split file.

    Args:
        obj: The parsed JSON.

    Returns:
        True when it is an object whose non-empty `images` list starts with an object having `filename`
        (COCO files use `file_name` instead).
    """
    if not isinstance(obj, dict):
        return False
    images = obj.get("images")
    if not isinstance(images, list) or not images or not isinstance(images[0], dict):
        return False
    return "filename" in images[0] and "file_name" not in images[0]


def load_karpathy(path: Path, split: str | None = None) -> list[KarpathyImage]:
    """Read a Karpathy split file.

    Args:
        path: The file.
        split: Keep only this split (`train` means `train` + `restval`); all images when None.

    Returns:
        The images, in file order.

    Raises:
        UsageError: The file does not exist.
        InputError: Invalid JSON or layout, an id that cannot be found, duplicate ids, an empty sentence, or a
            split with no image (the message lists the splits present).
    """
    return parse_karpathy(read_json(path), Path(path), split)


def parse_karpathy(data: Any, path: Path, split: str | None = None) -> list[KarpathyImage]:
    """Validate an already parsed Karpathy split document (see `load_karpathy`).

    Args:
        data: The parsed JSON.
        path: The file it came from, for errors.
        split: As `load_karpathy`.

    Returns:
        The images, as `load_karpathy`.

    Raises:
        InputError: As `load_karpathy`.
    """
    if not is_karpathy(data):
        raise InputError("not a Karpathy split file (expected 'images' entries with 'filename')", path=path)
    images: list[KarpathyImage] = []
    seen: dict[int, str] = {}
    for index, entry in enumerate(data["images"]):
        image = _parse_entry(expect_dict(entry, f"images[{index}]", path), index, path)
        if image.image_id in seen:
            raise InputError(
                f"duplicate image id {image.image_id}: {seen[image.image_id]} and {image.relative_path}", path=path
            )
        seen[image.image_id] = image.relative_path
        images.append(image)
    return images if split is None else select_split(images, split, path)


def select_split(images: list[KarpathyImage], split: str, path: Path) -> list[KarpathyImage]:
    """Keep the images of one split (`train` means `train` + `restval`).

    Args:
        images: All images of the file.
        split: The requested split name.
        path: The file, for errors.

    Returns:
        The selected images, in file order.

    Raises:
        InputError: No image belongs to the split; the message lists the splits present.
    """
    wanted = SPLIT_ALIASES.get(split, frozenset({split}))
    selected = [image for image in images if image.split in wanted]
    if not selected:
        present = ", ".join(sorted({image.split for image in images})) or "none"
        raise InputError(f"no image in split {split!r}; splits present: {present}", path=path)
    return selected


def _parse_entry(entry: dict[str, Any], index: int, path: Path) -> KarpathyImage:
    """Validate one `images` entry.

    Args:
        entry: The image object.
        index: Its position, for errors.
        path: The file, for errors.

    Returns:
        The image.

    Raises:
        InputError: A missing or malformed field, or no id to be found.
    """
    what = f"images[{index}]"
    filename = expect_str(entry, "filename", what, path, non_empty=True)
    filepath = expect_str(entry, "filepath", what, path) if "filepath" in entry else ""
    split = expect_str(entry, "split", what, path) if "split" in entry else ""
    if "cocoid" in entry:
        image_id = expect_int(entry, "cocoid", what, path)
    else:
        found = image_id_from_filename(filename)
        if found is None:
            raise InputError(f"{what} has no 'cocoid' and no number at the end of {filename!r}", path=path)
        image_id = found
    return KarpathyImage(image_id, filepath.strip("/"), filename, split, _parse_sentences(entry, what, path))


def _parse_sentences(entry: dict[str, Any], what: str, path: Path) -> list[str]:
    """Validate the `sentences` of an entry and return their `raw` strings.

    Args:
        entry: The image object.
        what: How to name it in errors.
        path: The file, for errors.

    Returns:
        The stripped `raw` strings (`[]` when the entry has no `sentences`).

    Raises:
        InputError: A sentence that is not an object, has no `raw` string, or is empty.
    """
    if "sentences" not in entry:
        return []
    sentences: list[str] = []
    for position, sentence in enumerate(expect_list(entry, "sentences", path, what=what)):
        name = f"{what} sentences[{position}]"
        sentence = expect_dict(sentence, name, path)
        if "sentid" in sentence and isinstance(sentence["sentid"], int):
            name = f"sentence {sentence['sentid']} of {what}"
        sentences.append(expect_str(sentence, "raw", name, path, non_empty=True).strip())
    return sentences
