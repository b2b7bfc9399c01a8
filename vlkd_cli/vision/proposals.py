"""Proposal sources for `extract-regions`: vlkd's detector, or any detector's COCO results file.

Each source runs the STUDENT backbone on the batch and returns the raw detections (original-image pixels)
together with the student feature maps, so the maps are computed once: with a detector they are the
detector's own backbone maps (DistillVLM's student uses its detector's features).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vlkd_cli.artifacts.io import file_sha256, input_record
from vlkd_cli.data.batching import ImageBatch
from vlkd_cli.data.detections import Detections, load_detection_results
from vlkd_cli.data.image_index import ImageRef
from vlkd_cli.errors import InputError
from vlkd_cli.vision.backbone import Backbone

# Raw detections handed to `select_regions` (which applies the user's threshold, NMS and top-k).
RAW_SCORE_THRESHOLD = 0.01
RAW_MAX_DETECTIONS = 300


class DetectorProposals:
    """vlkd's own detector: proposals and student maps from one forward pass."""

    def __init__(self, path: Path, device: torch.device) -> None:
        from vlkd_cli.vision.detector import load_detector

        self.detector, config = load_detector(path)
        self.detector.to(device)
        self.backbone: Backbone = self.detector.backbone
        self.categories: list[dict] = config.get("categories", [])
        self.category_ids = np.array([int(c["id"]) for c in self.categories], dtype=np.int64)
        self.image_size: int | None = config.get("image_size")
        self.name = f"detector:{input_record(path, 'detector')['sha256']}"

    def __call__(self, batch: ImageBatch, pixels: torch.Tensor) -> tuple[list[Detections], list[torch.Tensor]]:
        outputs = self.detector(pixels)
        heads = {k: v.contiguous() for k, v in outputs.items() if k != "features"}  # decode flattens with views
        outputs = {**outputs, **heads}
        detections = self.detector.decode(outputs, tuple(pixels.shape[-2:]), score_threshold=RAW_SCORE_THRESHOLD,
                                          max_detections=RAW_MAX_DETECTIONS, nms_iou=1.0)  # fmt: skip
        raw = []
        for detection, (sx, sy) in zip(detections, batch.scales):
            boxes = detection["boxes"].float().cpu().numpy() / np.array([sx, sy, sx, sy], dtype=np.float32)
            labels = self.category_ids[detection["labels"].cpu().numpy()]
            raw.append(Detections(boxes.astype(np.float32), detection["scores"].float().cpu().numpy(), labels))
        return raw, outputs["features"]


class FileProposals:
    """Proposals from a COCO results file; student maps from the given student backbone."""

    def __init__(self, path: Path, refs: list[ImageRef], backbone: Backbone) -> None:
        self.results = load_detection_results(path)
        covered = sum(ref.image_id in self.results for ref in refs)
        if refs and covered == 0:
            raise InputError(f"the proposals cover none of the {len(refs)} images (wrong file or split?)", path)
        self.backbone = backbone
        self.categories: list[dict] = []
        self.image_size: int | None = None
        self.name = f"results:{file_sha256(path)}"

    def __call__(self, batch: ImageBatch, pixels: torch.Tensor) -> tuple[list[Detections], list[torch.Tensor]]:
        maps = self.backbone(self.backbone.preprocess(pixels))  # L x (B, C_l, H_l, W_l)
        return [self.results.get(ref.image_id, Detections.empty()) for ref in batch.refs], maps
