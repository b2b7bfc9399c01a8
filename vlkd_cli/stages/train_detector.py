"""`vlkd train-detector`: train the student detector on COCO instances and evaluate box AP with COCOeval.

The detector directory holds `config.json` (architecture, categories, input size, training summary, val AP),
`model.safetensors` (kind `detector`), `metrics.json` and `log.jsonl`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlkd_cli.artifacts.io import build_metadata, input_record
from vlkd_cli.artifacts.model_dir import save_model_dir
from vlkd_cli.data.batching import DecodeStats, iter_batches
from vlkd_cli.data.coco import CocoInstances, coco_api, load_coco_instances
from vlkd_cli.data.image_index import ImageRef, resolve_images
from vlkd_cli.data.images import load_image
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.progress import progress_bar
from vlkd_cli.runtime import resolve_device, seed_everything
from vlkd_cli.vision.backbone import create_backbone
from vlkd_cli.vision.detector import Detector
from vlkd_cli.vision.detector_training import evaluate_box_ap, to_coco_results, train_detector


@dataclass(frozen=True)
class TrainDetectorConfig:
    images: Path
    instances: Path
    backbone: str
    out: Path
    backbone_weights: Path | None = None
    pretrained: bool = False
    val_fraction: float = 0.1
    image_size: int = 512
    epochs: int = 30
    max_steps: int | None = None
    batch_size: int = 16
    lr: float = 2e-3
    channels: int = 64
    device: str = "auto"
    seed: int = 0


class _Samples(Sequence):
    """Training samples decoded on access, so memory does not grow with the data set."""

    def __init__(self, refs: list[ImageRef], instances: CocoInstances, class_of: dict[int, int], image_size: int):
        self.refs, self.instances, self.class_of, self.image_size = refs, instances, class_of, image_size

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int):
        ref = self.refs[index]
        decoded = load_image(ref.path, max_side=self.image_size)
        pixels = torch.from_numpy(np.array(decoded.image, dtype=np.uint8)).permute(2, 0, 1).contiguous()  # (3, h, w)
        keep = ~self.instances.iscrowd[ref.image_id]
        scale = np.array([pixels.shape[2] / decoded.width, pixels.shape[1] / decoded.height] * 2, dtype=np.float32)
        boxes = torch.from_numpy(self.instances.boxes[ref.image_id][keep] * scale)  # (n, 4) input pixels
        labels = torch.tensor([self.class_of[int(c)] for c in self.instances.labels[ref.image_id][keep]], dtype=torch.int64)
        return pixels, boxes, labels


def split_train_val(refs: list[ImageRef], val_fraction: float, seed: int) -> tuple[list[ImageRef], list[ImageRef]]:
    """A seeded random split; at least one validation image when val_fraction > 0."""
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    order = list(range(len(refs)))
    random.Random(seed).shuffle(order)
    num_val = max(1, round(len(refs) * val_fraction)) if val_fraction > 0 else 0
    if len(refs) - num_val < 1:
        raise InputError(f"only {len(refs)} images: nothing left to train on")
    val = sorted(order[:num_val])
    train = sorted(order[num_val:])
    return [refs[i] for i in train], [refs[i] for i in val]


def run(cfg: TrainDetectorConfig) -> dict[str, Any]:
    """Train, evaluate on the held-out images, write the detector directory; return the metrics."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    instances = load_coco_instances(cfg.instances)
    if not instances.categories:
        raise InputError("no categories: a detector needs COCO instances with categories", cfg.instances)
    refs = resolve_images(cfg.images, cfg.instances)
    train_refs, val_refs = split_train_val(refs, cfg.val_fraction, cfg.seed)
    class_of = {int(c["id"]): n for n, c in enumerate(instances.categories)}
    backbone = create_backbone(cfg.backbone, weights=cfg.backbone_weights, pretrained=cfg.pretrained, seed=cfg.seed)
    detector = Detector(backbone, len(class_of), channels=cfg.channels).to(device)
    samples = _Samples(train_refs, instances, class_of, cfg.image_size)
    total_steps = cfg.max_steps or cfg.epochs * -(-len(samples) // cfg.batch_size)
    with progress_bar("train-detector", total_steps) as advance:
        summary = train_detector(detector, samples, image_size=cfg.image_size, epochs=cfg.epochs,
                                 max_steps=cfg.max_steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                                 progress=lambda step, total, logs: advance(1))  # fmt: skip
    metrics = {"val_images": len(val_refs), "train_images": len(train_refs), "steps": summary["steps"],
               "train_seconds": round(summary["seconds"], 1), "final_loss": summary["final_loss"]}  # fmt: skip
    if val_refs:
        metrics.update(_evaluate(detector, val_refs, instances, cfg, device))
    _save(cfg, detector, instances, metrics, summary["history"])
    return metrics


def _evaluate(detector: Detector, refs: list[ImageRef], instances: CocoInstances, cfg, device) -> dict[str, float]:
    category_ids = [int(c["id"]) for c in instances.categories]
    results: list[dict] = []
    with torch.inference_mode(), progress_bar("evaluate", len(refs)) as advance:
        for batch in iter_batches(refs, image_size=cfg.image_size, batch_size=cfg.batch_size, skip_bad_images=False,
                                  stats=DecodeStats(skipped=[])):  # fmt: skip
            detections = detector.detect(batch.pixels.to(device))
            results += to_coco_results(detections, [r.image_id for r in batch.refs], category_ids,
                                       scales=[sx for sx, _ in batch.scales])  # fmt: skip
            advance(len(batch.refs))
    ap = evaluate_box_ap(results, coco_api(cfg.instances), image_ids=[r.image_id for r in refs])
    return {f"val_{name}": value for name, value in ap.items()}


def _save(cfg: TrainDetectorConfig, detector: Detector, instances: CocoInstances, metrics: dict, history: list) -> None:
    config = {
        "detector": detector.config,
        "categories": [{"id": int(c["id"]), "name": c.get("name", str(c["id"]))} for c in instances.categories],
        "image_size": cfg.image_size,
        "backbone_sha256": detector.backbone.weights_sha256,
        "metrics": metrics,
        "train_config": json.loads(json.dumps(asdict(cfg), default=str)),
    }
    inputs = [input_record(cfg.instances, "instances")]
    if cfg.backbone_weights is not None:
        inputs.append(input_record(cfg.backbone_weights, "backbone_weights"))
    metadata = build_metadata("detector", command="train-detector", config=config["train_config"], inputs=inputs)
    log = "".join(json.dumps(entry) + "\n" for entry in history)
    save_model_dir(cfg.out, config=config, state_dict=detector.state_dict(), metadata=metadata,
                   extra_files={"metrics.json": json.dumps(metrics, indent=2) + "\n", "log.jsonl": log})  # fmt: skip
