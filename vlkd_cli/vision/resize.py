"""Letterboxing: resize an image so its longest side is a given size, pad bottom/right to a square."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def resize_longest_side(image: Tensor, size: int) -> tuple[Tensor, float]:
    """Resize (antialiased bilinear) so that max(H, W) == size, then zero-pad bottom/right to (size, size).

    Boxes in original pixels map to the result by multiplying with `scale` (no shift: padding is bottom/right);
    detections map back by dividing by it.

    Args:
        image: (3, H, W) uint8.
        size: side of the square output.

    Returns:
        (3, size, size) uint8 and `scale` = size / max(H, W).
    """
    _, height, width = image.shape
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    if (new_h, new_w) != (height, width):
        resized = F.interpolate(
            image.unsqueeze(0).float(), size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
        )  # (1, 3, new_h, new_w)
        image = resized.squeeze(0).round().clamp(0, 255).to(torch.uint8)
    return F.pad(image, (0, size - new_w, 0, size - new_h)), scale  # (3, size, size)
