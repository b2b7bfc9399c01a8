"""Training the student detector on in-memory samples, and COCO box AP of its results.

Data loading stays outside: the caller (the `train-detector` stage) reads COCO, letterboxes each image to
`image_size` (`vision.resize.resize_longest_side`) and maps category ids to 0..C-1.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from vlkd_cli.errors import InputError, RunError
from vlkd_cli.vision.detector import Detector

Sample = tuple[Tensor, Tensor, Tensor]  # image (3, H, W) uint8, boxes (n, 4) xyxy pixels, labels (n,) 0..C-1
ProgressFn = Callable[[int, int, dict[str, float]], None]  # (step, total_steps, logs)


def _check_sample(index: int, sample: Sample, image_size: int, num_classes: int) -> None:
    image, boxes, labels = sample
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"sample {index}: image must be (3, H, W) uint8, got {tuple(image.shape)} {image.dtype}")
    if max(image.shape[1:]) > image_size:
        raise ValueError(f"sample {index}: image {tuple(image.shape)} is larger than image_size {image_size}")
    if boxes.ndim != 2 or boxes.shape[1] != 4 or labels.shape != (boxes.shape[0],):
        raise ValueError(f"sample {index}: boxes must be (n, 4) and labels (n,), got {tuple(boxes.shape)}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"sample {index}: labels must lie in 0..{num_classes - 1}")


def _load(
    samples: Sequence[Sample], index: int, num_classes: int, image_size: int, generator: torch.Generator
) -> Sample:
    """Read sample `index` (a lazy Sequence decodes here, not up front), check it and augment it."""
    sample = samples[index]
    _check_sample(index, sample, image_size, num_classes)
    return _augment(sample, image_size, generator)


def _augment(sample: Sample, image_size: int, generator: torch.Generator) -> Sample:
    """Pad to (image_size, image_size) and flip horizontally with probability 1/2 (boxes follow)."""
    image, boxes, labels = sample
    image = F.pad(image, (0, image_size - image.shape[2], 0, image_size - image.shape[1]))  # (3, S, S)
    boxes = boxes.float()
    if torch.rand((), generator=generator) < 0.5:
        image = image.flip(-1)
        boxes = torch.stack([image_size - boxes[:, 2], boxes[:, 1], image_size - boxes[:, 0], boxes[:, 3]], dim=1)
    return image, boxes, labels.long()


def _batches(
    samples: Sequence[Sample],
    total: int,
    batch_size: int,
    num_classes: int,
    image_size: int,
    generator: torch.Generator,
) -> Iterator[tuple[Tensor, list[dict[str, Tensor]]]]:
    """`total` batches: epochs of seeded random order, each sample checked, padded and maybe flipped."""
    step = 0
    while True:
        order = torch.randperm(len(samples), generator=generator).tolist()
        for first in range(0, len(order), batch_size):
            if step == total:
                return
            yield _collate(
                [_load(samples, i, num_classes, image_size, generator) for i in order[first : first + batch_size]]
            )
            step += 1


def _collate(samples: list[Sample]) -> tuple[Tensor, list[dict[str, Tensor]]]:
    images = torch.stack([image for image, _, _ in samples])  # (B, 3, S, S) uint8
    return images, [{"boxes": boxes, "labels": labels} for _, boxes, labels in samples]


def _optimizer(detector: Detector, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and normalisation parameters (1-D tensors)."""
    params = [p for p in detector.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_detector(
    detector: Detector,
    train_samples: Sequence[Sample],
    *,
    image_size: int,
    epochs: int = 30,
    max_steps: int | None = None,
    batch_size: int = 16,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    warmup_steps: int | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Train `detector` in place (AdamW, warm-up + cosine, horizontal flips); deterministic for a seed on CPU.

    The detector is left in eval mode.

    Args:
        detector: the model (its initialisation is the caller's, e.g. `create_backbone(..., seed=)`).
        train_samples: (image (3, H, W) uint8 with max(H, W) <= image_size, boxes (n, 4) xyxy float in that image's
            pixels, labels (n,) int 0..C-1); images are padded bottom/right to (image_size, image_size). Any
            Sequence works; a lazy one is indexed (and checked) only when a batch needs the sample.
        image_size: side of the square training input.
        epochs: passes over the samples (the last batch of an epoch may be smaller).
        max_steps: optimizer steps; wins over `epochs` when given.
        batch_size: images per step.
        lr: peak learning rate.
        weight_decay: AdamW decay of conv/linear weights.
        warmup_steps: linear warm-up length (default: 5% of the steps, at least 1).
        seed: seeds the sample order and augmentation (the global RNG is left as it was).
        progress: called after each step with (step, total_steps, logs of floats).

    Returns:
        `steps`, `epochs` (float), `seconds`, `final_loss` (mean of the last 10 steps) and `history`: one dict of
        floats per step (`step`, `lr`, `loss`, `heatmap_loss`, `size_loss`, `offset_loss`).

    Raises:
        ValueError: no samples, a bad count, or a sample that breaks the contract above.
        RunError: a non-finite loss.
    """
    if not len(train_samples) or batch_size < 1 or (max_steps if max_steps is not None else epochs) < 1:
        raise ValueError("need samples, batch_size >= 1 and at least one epoch or step")
    steps_per_epoch = math.ceil(len(train_samples) / batch_size)
    total = max_steps if max_steps is not None else epochs * steps_per_epoch
    warmup = warmup_steps if warmup_steps is not None else max(1, total // 20)
    optimizer = _optimizer(detector, lr, weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total, warmup))
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    detector.train()
    batches = _batches(train_samples, total, batch_size, detector.num_classes, image_size, generator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step, batch in enumerate(batches, start=1):
            lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
            logs = {"step": float(step), "lr": lr, **_train_step(detector, optimizer, batch)}
            schedule.step()
            history.append(logs)
            if progress is not None:
                progress(step, total, logs)
    detector.eval()
    tail = [h["loss"] for h in history[-10:]]
    return {
        "steps": len(history),
        "epochs": len(history) / steps_per_epoch,
        "seconds": time.perf_counter() - start,
        "final_loss": sum(tail) / len(tail),
        "history": history,
    }


def _train_step(
    detector: Detector, optimizer: torch.optim.Optimizer, batch: tuple[Tensor, list[dict[str, Tensor]]]
) -> dict[str, float]:
    images, targets = batch
    losses = detector.loss(detector(images), targets)
    if not torch.isfinite(losses["loss"].detach()):
        raise RunError(f"non-finite detector loss {losses['loss'].item()}")
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(detector.parameters(), max_norm=10.0)
    optimizer.step()
    return {name: float(value.detach()) for name, value in losses.items()}


def to_coco_results(
    detections: Sequence[dict[str, Tensor]],
    image_ids: Sequence[int],
    category_ids: Sequence[int],
    *,
    scales: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """COCO detection results (`[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`) from `detect` output.

    Args:
        detections: per image `boxes` (n, 4) xyxy in input pixels, `scores` (n,), `labels` (n,) 0..C-1.
        image_ids: the COCO image id of each entry.
        category_ids: COCO category id of each class index 0..C-1.
        scales: per image, input pixels per original pixel (`resize_longest_side`'s scale); boxes are divided by it.
    """
    results = []
    for index, (detection, image_id) in enumerate(zip(detections, image_ids, strict=True)):
        scale = 1.0 if scales is None else float(scales[index])
        boxes = detection["boxes"].float() / scale  # (n, 4) original pixels
        for box, score, label in zip(boxes.tolist(), detection["scores"].tolist(), detection["labels"].tolist()):
            x1, y1, x2, y2 = box
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(category_ids[label]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    return results


def evaluate_box_ap(
    detections_coco_results: list[dict[str, Any]], coco_gt: Any, *, image_ids: Sequence[int] | None = None
) -> dict[str, float]:
    """COCO box AP with `pycocotools.cocoeval.COCOeval` (iouType "bbox"), its prints silenced.

    Args:
        detections_coco_results: COCO results (`image_id`, `category_id`, `bbox` xywh, `score`).
        coco_gt: a `pycocotools.coco.COCO` with the ground truth.
        image_ids: evaluate only these images (default: every image of `coco_gt`, those without results count
            as missed).

    Returns:
        `AP` (IoU 0.50:0.95), `AP50`, `AP75` as fractions; 0.0 when there are no results, -1.0 when there is no
        ground-truth box (COCOeval's convention).

    Raises:
        InputError: a result names an image that is not in the ground truth.
    """
    from pycocotools.cocoeval import COCOeval

    known = set(coco_gt.getImgIds())
    unknown = {r["image_id"] for r in detections_coco_results} - known
    if unknown:
        examples = sorted(unknown)[:3]
        raise InputError(f"detection results name {len(unknown)} images missing from the ground truth, e.g. {examples}")
    if not detections_coco_results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(list(detections_coco_results))
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        if image_ids is not None:
            evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {"AP": float(stats[0]), "AP50": float(stats[1]), "AP75": float(stats[2])}
