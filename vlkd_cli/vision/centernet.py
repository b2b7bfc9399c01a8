"""CenterNet box encoding ("Objects as Points", Zhou et al. 2019): targets, losses and decoding.

An object is the peak of its class heatmap at the cell holding its box centre, plus two regressions read at that
cell: the sub-cell offset of the centre and the box size. Here the size is regressed as `log(side / stride)`
(scale-free, so one L1 weight fits small and large boxes) and the heatmap Gaussians are elliptical with
sigma = alpha * side / 6 (TTFNet, Liu et al. 2019), which suits the non-square boxes of COCO.

Shapes: B images, C classes, an output grid (h, w) of stride s; boxes are xyxy in input pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F
from torchvision.ops import batched_nms

GAUSSIAN_ALPHA = 0.54
MIN_SIGMA = 0.5  # cells: even a tiny box marks its neighbours as partly positive
HEATMAP_PRIOR = 0.1  # initial foreground probability of the heatmap logits (CenterNet's bias -2.19)
MAX_LOG_SIZE = 8.0  # exp(8) * stride: beyond any image, guards exp() of an untrained size head


def heatmap_bias_init() -> float:
    """Return the initial heatmap logit bias, such that sigmoid(bias) = HEATMAP_PRIOR."""
    return -math.log((1.0 - HEATMAP_PRIOR) / HEATMAP_PRIOR)


@dataclass
class CenterTargets:
    """Training targets of a batch.

    Attributes:
        heatmap: (B, C, h, w) in [0, 1]; exactly 1 at object centres.
        batch_index, cell_y, cell_x: (N,) int64 location of each of the N objects' centre cells.
        offset: (N, 2) sub-cell centre offset (dx, dy) in [0, 1).
        log_size: (N, 2) log(width / s), log(height / s).
    """

    heatmap: Tensor
    batch_index: Tensor
    cell_y: Tensor
    cell_x: Tensor
    offset: Tensor
    log_size: Tensor


def _gaussians(cx: Tensor, cy: Tensor, sx: Tensor, sy: Tensor, h: int, w: int) -> Tensor:
    """(n, h, w) unnormalised Gaussians centred on integer cells (cx, cy) with per-object sigmas (sx, sy)."""
    ys = torch.arange(h, dtype=sx.dtype, device=sx.device).view(1, h, 1)
    xs = torch.arange(w, dtype=sx.dtype, device=sx.device).view(1, 1, w)
    dx2 = (xs - cx.view(-1, 1, 1)) ** 2 / (2 * sx.view(-1, 1, 1) ** 2)
    dy2 = (ys - cy.view(-1, 1, 1)) ** 2 / (2 * sy.view(-1, 1, 1) ** 2)
    return torch.exp(-(dx2 + dy2))  # (n, h, w)


def encode_targets(
    boxes: list[Tensor], labels: list[Tensor], *, num_classes: int, grid: tuple[int, int], stride: int
) -> CenterTargets:
    """Build the CenterNet targets of a batch.

    Args:
        boxes: B tensors (n_b, 4) xyxy in input pixels; boxes narrower or lower than 1 px are dropped.
        labels: B tensors (n_b,) int in 0..C-1.
        num_classes: C.
        grid: (h, w) of the output maps.
        stride: s, input pixels per output cell.
    """
    h, w = grid
    device = boxes[0].device if boxes else torch.device("cpu")
    heatmap = torch.zeros(len(boxes), num_classes, h, w, device=device)
    parts: dict[str, list[Tensor]] = {"b": [], "y": [], "x": [], "offset": [], "log_size": []}
    for b, (image_boxes, image_labels) in enumerate(zip(boxes, labels)):
        image_boxes = image_boxes.float().reshape(-1, 4)
        size = image_boxes[:, 2:] - image_boxes[:, :2]  # (n, 2) width, height in pixels
        keep = (size >= 1).all(dim=1)
        image_boxes, size, image_labels = image_boxes[keep], size[keep], image_labels[keep].long()
        centre = (image_boxes[:, :2] + image_boxes[:, 2:]) / (2 * stride)  # (n, 2) in cells
        cell = torch.stack([centre[:, 0].floor().clamp(0, w - 1), centre[:, 1].floor().clamp(0, h - 1)], dim=1)
        sigma = (GAUSSIAN_ALPHA * size / (6 * stride)).clamp(min=MIN_SIGMA)  # (n, 2)
        gauss = _gaussians(cell[:, 0], cell[:, 1], sigma[:, 0], sigma[:, 1], h, w)  # (n, h, w)
        index = image_labels.view(-1, 1).expand(-1, h * w)  # (n, h*w): the class row of each object
        heatmap[b].view(num_classes, h * w).scatter_reduce_(0, index, gauss.view(-1, h * w), "amax")  # overlaps: max
        parts["b"].append(torch.full((len(cell),), b, dtype=torch.long, device=device))
        parts["y"].append(cell[:, 1].long())
        parts["x"].append(cell[:, 0].long())
        parts["offset"].append((centre - cell).clamp(0, 1))
        parts["log_size"].append(torch.log(size / stride))
    cat = {key: torch.cat(values) if values else torch.zeros(0) for key, values in parts.items()}
    return CenterTargets(heatmap, cat["b"], cat["y"], cat["x"], cat["offset"], cat["log_size"])


def focal_loss(logits: Tensor, target: Tensor, *, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss, summed and divided by the number of peaks.

    Args:
        logits: (B, C, h, w) heatmap logits.
        target: (B, C, h, w) Gaussian heatmap, 1 at object centres.
        alpha: focusing exponent on (1 - p) at peaks and on p elsewhere.
        beta: exponent of (1 - target) that reduces the penalty near a peak.
    """
    prob = logits.sigmoid()
    positive = target.eq(1).float()
    pos_loss = F.logsigmoid(logits) * (1 - prob) ** alpha * positive
    neg_loss = F.logsigmoid(-logits) * prob**alpha * (1 - target) ** beta * (1 - positive)
    return -(pos_loss.sum() + neg_loss.sum()) / positive.sum().clamp(min=1.0)


def centernet_loss(
    outputs: dict[str, Tensor], targets: CenterTargets, *, size_weight: float = 1.0, offset_weight: float = 1.0
) -> dict[str, Tensor]:
    """Heatmap focal loss plus L1 on log-size and offset at the object centres.

    Args:
        outputs: `heatmap` (B, C, h, w) logits, `size` (B, 2, h, w) log-sizes, `offset` (B, 2, h, w).
        targets: from `encode_targets` on the same grid.
        size_weight: weight of the log-size L1 term.
        offset_weight: weight of the offset L1 term.

    Returns:
        `loss` (the weighted total), `heatmap_loss`, `size_loss`, `offset_loss`: scalars.
    """
    heatmap_loss = focal_loss(outputs["heatmap"].float(), targets.heatmap)
    index = (targets.batch_index, slice(None), targets.cell_y, targets.cell_x)
    if len(targets.batch_index):
        size_loss = F.l1_loss(outputs["size"][index].float(), targets.log_size)  # over (N, 2)
        offset_loss = F.l1_loss(outputs["offset"][index].float(), targets.offset)
    else:  # no object in the batch: keep the graph, add zero
        size_loss = outputs["size"].sum() * 0.0
        offset_loss = outputs["offset"].sum() * 0.0
    total = heatmap_loss + size_weight * size_loss + offset_weight * offset_loss
    return {"loss": total, "heatmap_loss": heatmap_loss, "size_loss": size_loss, "offset_loss": offset_loss}


def decode_detections(
    outputs: dict[str, Tensor],
    *,
    stride: int,
    image_size: tuple[int, int],
    score_threshold: float = 0.05,
    max_detections: int = 100,
    nms_iou: float = 0.5,
) -> list[dict[str, Tensor]]:
    """Turn head outputs into boxes: 3x3 peak picking, top-k, decoding, per-class NMS.

    Args:
        outputs: `heatmap` (B, C, h, w) logits, `size` (B, 2, h, w), `offset` (B, 2, h, w).
        stride: s.
        image_size: (H, W) of the input before any padding; boxes are clipped to it.
        score_threshold: minimum heatmap probability kept.
        max_detections: at most this many boxes per image (after NMS).
        nms_iou: IoU above which a lower-scoring box of the same class is suppressed (`batched_nms`).

    Returns:
        Per image: `boxes` (n, 4) float32 xyxy in input pixels, `scores` (n,) descending, `labels` (n,) int64 0..C-1.
    """
    heat = outputs["heatmap"].float().sigmoid()  # (B, C, h, w)
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)  # keep local maxima only
    batch, classes, h, w = heat.shape
    k = min(classes * h * w, 2 * max_detections)
    scores, flat = peaks.reshape(batch, -1).topk(k, dim=1)  # (B, k)
    labels, cells = flat // (h * w), flat % (h * w)
    ys, xs = cells // w, cells % w  # (B, k)
    results = []
    for b in range(batch):
        offset = outputs["offset"][b, :, ys[b], xs[b]].float()  # (2, k)
        size = outputs["size"][b, :, ys[b], xs[b]].float().clamp(max=MAX_LOG_SIZE).exp() * stride  # (2, k) pixels
        cx, cy = (xs[b] + offset[0]) * stride, (ys[b] + offset[1]) * stride  # (k,)
        boxes = torch.stack([cx - size[0] / 2, cy - size[1] / 2, cx + size[0] / 2, cy + size[1] / 2], dim=1)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, image_size[1])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, image_size[0])
        keep = scores[b] >= score_threshold
        results.append(_nms(boxes[keep], scores[b][keep], labels[b][keep], nms_iou, max_detections))
    return results


def _nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou: float, limit: int) -> dict[str, Tensor]:
    keep = batched_nms(boxes, scores, labels, iou)[:limit]  # sorted by descending score
    return {"boxes": boxes[keep].float(), "scores": scores[keep].float(), "labels": labels[keep].long()}
