"""COCO detection results files (`[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]`).

Any detector's results in this format can stand in for vlkd's own detector (`--proposals`), and the
proposals are post-processed exactly like the detector's: score threshold, NMS, top-k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlkd_cli.errors import InputError
from vlkd_cli.jsonfile import read_json


@dataclass(frozen=True)
class Detections:
    """Detections of one image: boxes (n, 4) float32 xyxy pixels, scores (n,) float32, labels (n,) int64."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def load_detection_results(path: Path) -> dict[int, Detections]:
    """Read a COCO results file into per-image detections (boxes converted from xywh to xyxy)."""
    path = Path(path)
    records = read_json(path)
    if not isinstance(records, list):
        raise InputError("a COCO results file must be a JSON list of {image_id, category_id, bbox, score}", path)
    per_image: dict[int, list[tuple[list[float], float, int]]] = {}
    for n, record in enumerate(records):
        image_id, box, score, label = _parse_record(record, n, path)
        per_image.setdefault(image_id, []).append((box, score, label))
    return {image_id: _stack(items) for image_id, items in per_image.items()}


def _parse_record(record: object, n: int, path: Path) -> tuple[int, list[float], float, int]:
    if not isinstance(record, dict):
        raise InputError(f"result #{n} is not an object", path)
    try:
        image_id, bbox = int(record["image_id"]), record["bbox"]
        score, label = float(record.get("score", 1.0)), int(record.get("category_id", -1))
        x, y, w, h = (float(v) for v in bbox)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"result #{n} needs image_id, bbox [x, y, w, h], score, category_id ({err!r})", path) from None
    if not all(math.isfinite(v) for v in (x, y, w, h, score)) or w < 0 or h < 0:
        raise InputError(f"result #{n} (image {image_id}) has an invalid bbox {bbox} or score {score}", path)
    return image_id, [x, y, x + w, y + h], score, label


def _stack(items: list[tuple[list[float], float, int]]) -> Detections:
    return Detections(
        boxes=np.asarray([b for b, _, _ in items], dtype=np.float32).reshape(-1, 4),
        scores=np.asarray([s for _, s, _ in items], dtype=np.float32),
        labels=np.asarray([c for _, _, c in items], dtype=np.int64),
    )


def select_regions(
    detections: Detections,
    *,
    height: int,
    width: int,
    score_threshold: float,
    nms_iou: float,
    max_regions: int,
    min_size: float = 1.0,
) -> Detections:
    """Clip to the image, drop tiny boxes and low scores, class-aware NMS (torchvision), keep the top `max_regions`.

    The result is ordered by descending score (ties keep input order), so the region order is deterministic.
    """
    import torch
    from torchvision.ops import batched_nms, clip_boxes_to_image

    boxes = clip_boxes_to_image(torch.from_numpy(detections.boxes.copy()), (height, width))  # (n, 4)
    scores, labels = torch.from_numpy(detections.scores), torch.from_numpy(detections.labels)
    keep = (scores >= score_threshold) & ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, nms_iou)  # sorted by descending score
    order = keep[torch.sort(scores[keep], descending=True, stable=True).indices][:max_regions]
    return Detections(boxes[order].numpy(), scores[order].numpy(), labels[order].numpy())
