"""VinVL/Oscar feature TSVs → one image's regions: the opened TSVs (`VinvlSources`) and the assembly of an image's
rows from all of them (boxes from the label rects or the 2048 + 6 geometry, the image size from every source that
has one, which must agree, boxes clipped within a tolerance, the second TSV's features on the same boxes). Used by
`vlkd import-regions`; the TSV formats themselves are `vinvl_tsv.py` (docs/usage-interop.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from vlkd_cli.data.vinvl_tsv import FeatureTsv, HwTsv, LabelRow, LabelTsv, TsvFile
from vlkd_cli.errors import InputError


@dataclass
class VinvlImage:
    """One image assembled from the TSV rows (regions in descending score order)."""

    image_id: int
    size: tuple[int, int]
    boxes: np.ndarray  # (n, 4) float32 xyxy pixels
    scores: np.ndarray  # (n,) float32
    labels: np.ndarray  # (n,) int64
    features: np.ndarray  # (n, D) float32: the --side features
    other: np.ndarray | None  # (n, D') float32 from the second TSV, else None (pooled later)


@dataclass
class VinvlSources:
    """The opened TSVs and what the per-image assembly needs."""

    main: FeatureTsv
    labels: LabelTsv | None
    hw: HwTsv | None
    other: FeatureTsv | None
    category_of: dict[str, int]
    tolerance: float
    counts: dict[str, int] = field(default_factory=lambda: {"clipped": 0})
    size_sources: dict[str, int] = field(default_factory=dict)

    def files(self) -> list[TsvFile]:
        return [f for f in (self.main, self.labels, self.hw, self.other) if f is not None]


def tsv_chunks(image_ids: list[int], sources: VinvlSources, batch_size: int) -> Iterator[list[VinvlImage]]:
    for start in range(0, len(image_ids), batch_size):
        yield [assemble_image(i, sources, None) for i in image_ids[start : start + batch_size]]


def assemble_image(image_id: int, sources: VinvlSources, decoded_size: tuple[int, int] | None) -> VinvlImage:
    """Read an image's rows from every TSV and build its regions: boxes, scores, labels, features.

    Args:
        image_id: The image.
        sources: The opened TSVs, the class-name map and the box tolerance.
        decoded_size: (height, width) of the decoded image when --images is given.

    Returns:
        The image, regions sorted by descending score (stable), boxes clipped to the image.

    Raises:
        InputError: A row is invalid, the sources disagree on the size or the boxes, or a box lies outside the image
            by more than the tolerance.
    """
    main = sources.main
    row = main.row_of(image_id)
    features, geometry = main.read_row(row)  # (n, D), (n, 6) | None
    label, label_row = None, None
    if sources.labels is not None:
        label_row = sources.labels.row_of(image_id)
        label = sources.labels.read_row(label_row)
        if len(label.names) != len(features):
            raise sources.labels.error(
                label_row,
                f"{len(label.names)} boxes, but row {row + 1} of {main.path.name} has {len(features)}: the label file "
                "does not describe these feature rows (omit --labels to take the boxes from the 2048 + 6 geometry)",
            )
    size = _image_size(image_id, sources, decoded_size, label, label_row, geometry)
    if label is not None:
        boxes = label.rects
        if geometry is not None:
            _check_agreement(boxes, geometry, size, sources, row, "the label rects")
    else:
        height, width = size
        boxes = (geometry[:, :4].astype(np.float64) * [width, height, width, height]).astype(np.float32)
    boxes = _clip(boxes, size, sources, row)
    scores = label.scores if label is not None else np.ones(len(boxes), np.float32)
    labels = np.array([sources.category_of.get(n, -1) for n in label.names] if label else [-1] * len(boxes), np.int64)
    other = _other_features(sources, image_id, row, boxes, size) if sources.other is not None else None
    order = np.argsort(-scores, kind="stable")
    return VinvlImage(image_id, size, boxes[order], scores[order], labels[order], features[order],
                  None if other is None else other[order])  # fmt: skip


def _image_size(image_id, sources: VinvlSources, decoded, label: LabelRow | None, label_row, geometry) -> tuple[int, int]:
    """(height, width) from every source present, which must agree; the first present wins."""
    main, row = sources.main, sources.main.row_of(image_id)
    found: list[tuple[str, tuple[int, int], TsvFile | None, int | None]] = []
    if decoded is not None:
        found.append(("the decoded image", tuple(int(v) for v in decoded), None, None))
    if sources.hw is not None:
        hw_row = sources.hw.row_of(image_id)
        found.append(("the hw TSV", sources.hw.read_row(hw_row), sources.hw, hw_row))
    if label is not None and label.size is not None:
        found.append(("the label row's image_h/image_w", label.size, sources.labels, label_row))
    if not found and label is not None and geometry is not None:
        inferred = _size_from_geometry(label.rects, geometry)
        if inferred is not None:
            found.append(("the label rects / geometry ratio", inferred, None, None))
    if not found:
        raise main.error(row, "no image size to place the boxes: give --hw HW.tsv or --images DIR")
    name, size, _, _ = found[0]
    for other_name, other_size, tsv, tsv_row in found[1:]:
        if other_size != size:
            message = f"image size (h, w) {other_size} disagrees with {name} {size}"
            raise tsv.error(tsv_row, message) if tsv is not None else main.error(row, message)
    sources.size_sources[name] = sources.size_sources.get(name, 0) + 1
    return size


def _size_from_geometry(rects: np.ndarray, geometry: np.ndarray) -> tuple[int, int] | None:
    """Image size implied by pixel rects and their normalised geometry (the widest / tallest box is most precise)."""
    if not len(rects):
        return None
    i, j = int(np.argmax(geometry[:, 4])), int(np.argmax(geometry[:, 5]))
    if geometry[i, 4] <= 0 or geometry[j, 5] <= 0:
        return None
    width = (rects[i, 2] - rects[i, 0]) / geometry[i, 4]
    height = (rects[j, 3] - rects[j, 1]) / geometry[j, 5]
    return round(float(height)), round(float(width))


def _check_agreement(boxes: np.ndarray, geometry: np.ndarray, size, sources: VinvlSources, row: int, what: str) -> None:
    """The boxes (pixels) must equal geometry × image size within the tolerance (x1, y1, x2, y2, w, h)."""
    height, width = size
    scale = np.array([width, height, width, height, width, height], dtype=np.float64)
    pixels = np.concatenate([boxes, boxes[:, 2:4] - boxes[:, 0:2]], axis=1).astype(np.float64)  # (n, 6)
    error = np.abs(geometry.astype(np.float64) * scale - pixels)
    if error.size and error.max() > sources.tolerance:
        box = int(np.argmax(error.max(axis=1)))
        raise sources.main.error(
            row,
            f"{what} and the feature geometry × image size (h, w) {size} differ by {error.max():.2f} px at box {box} "
            f"({boxes[box].tolist()} vs {(geometry[box, :4] * scale[:4]).round(2).tolist()}; --box-tolerance "
            f"{sources.tolerance}): not the same boxes, or a wrong image size",
        )


def _clip(boxes: np.ndarray, size: tuple[int, int], sources: VinvlSources, row: int) -> np.ndarray:
    """Clip boxes to the image; a box further outside than the tolerance is an error (a wrong image size)."""
    height, width = size
    limit = np.array([width, height, width, height], dtype=np.float32)
    outside = (boxes < -sources.tolerance).any(axis=1) | (boxes > limit + sources.tolerance).any(axis=1)
    if outside.any():
        box = int(np.flatnonzero(outside)[0])
        raise sources.main.error(
            row, f"box {box} {boxes[box].tolist()} lies outside the {width}x{height} image (wrong image size?)"
        )
    clipped = np.clip(boxes, 0, limit).astype(np.float32)
    sources.counts["clipped"] += int((clipped != boxes).any(axis=1).sum())
    return clipped


def _other_features(sources: VinvlSources, image_id: int, row: int, boxes: np.ndarray, size) -> np.ndarray:
    """The second TSV's features of an image: same box count, and its geometry (if any) on the same boxes."""
    other = sources.other
    other_row = other.row_of(image_id)
    features, geometry = other.read_row(other_row)
    if len(features) != len(boxes):
        raise other.error(
            other_row, f"{len(features)} boxes, but row {row + 1} of {sources.main.path.name} has {len(boxes)}: "
            "the two feature files are not on the same boxes"
        )  # fmt: skip
    if geometry is not None:
        try:
            _check_agreement(boxes, geometry, size, sources, row, "the boxes")
        except InputError as err:
            raise other.error(other_row, f"not on the same boxes as {sources.main.path.name}: {err}") from None
    return features
