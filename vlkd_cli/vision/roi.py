"""Region features: RoIAlign on every feature level, spatially mean-pooled, concatenated over levels.

Choice: MiniVLM's student detector uses a reduced 4x4 RoIAlign, so `output_size` defaults to 4. Each level is
pooled with `torchvision.ops.roi_align(aligned=True, sampling_ratio=2)` and the 4x4 grid is averaged (as the global
average pool at the end of a ResNet C5 box head). Instead of FPN's one-level-per-box assignment, every box reads
every level and the level vectors are concatenated: the feature size is then fixed (sum of channels), a small box
still gets the coarse context of stride 32 and a large box the detail of stride 8, and no size threshold has to be
tuned per backbone.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import roi_align

from vlkd_cli.data.batching import ImageBatch


def roi_features(
    feature_maps: list[Tensor],
    strides: list[int],
    boxes: list[Tensor],
    *,
    output_size: int = 4,
) -> Tensor:
    """Pool one feature vector per box from multi-scale feature maps.

    Args:
        feature_maps: L maps, level l of shape (B, C_l, H_l, W_l) (any memory format).
        strides: L reductions, `feature_maps[l]` pixel (i, j) covers input pixels around (i * s_l, j * s_l).
        boxes: B tensors, image b of shape (R_b, 4): xyxy in pixels of the input tensor that produced the maps
            (the caller scales boxes from original-image pixels).
        output_size: side of the RoIAlign grid before mean pooling.

    Returns:
        (R, sum_l C_l) with R = sum_b R_b, rows in image order then box order; dtype of the feature maps.

    Raises:
        ValueError: the numbers of maps and strides, or of images and box tensors, differ; or boxes are not (n, 4).
    """
    if len(feature_maps) != len(strides) or not feature_maps:
        raise ValueError(f"got {len(feature_maps)} feature maps and {len(strides)} strides")
    batch = feature_maps[0].shape[0]
    if len(boxes) != batch:
        raise ValueError(f"got box lists for {len(boxes)} images but feature maps for {batch}")
    for image_boxes in boxes:
        if image_boxes.ndim != 2 or image_boxes.shape[-1] != 4:
            raise ValueError(f"boxes must be (n, 4) per image, got {tuple(image_boxes.shape)}")
    pooled = []
    for fmap, stride in zip(feature_maps, strides):
        rois = [b.to(device=fmap.device, dtype=fmap.dtype) for b in boxes]
        grid = roi_align(
            fmap, rois, output_size, spatial_scale=1.0 / stride, sampling_ratio=2, aligned=True
        )  # (R, C_l, output_size, output_size)
        pooled.append(grid.mean(dim=(2, 3)))  # (R, C_l)
    return torch.cat(pooled, dim=1)  # (R, sum C_l)


def pooled_roi_features(maps, strides, batch: ImageBatch, boxes: list[np.ndarray], roi_size: int) -> np.ndarray:
    """RoI features (R, D) of `boxes` (original-image pixels) from one backbone's maps of the batch."""
    scaled = [
        torch.from_numpy(b * np.array([sx, sy, sx, sy], dtype=np.float32)) for b, (sx, sy) in zip(boxes, batch.scales)
    ]  # tensor pixels, (n_b, 4) each
    return roi_features(maps, strides, scaled, output_size=roi_size).float().cpu().numpy()  # (R, D)
