"""A small FPN-like top-down fusion of the backbone's three levels into one fine map (stride 8 or 4)."""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn import functional as F


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv (no bias) + BatchNorm + ReLU, spatial size kept."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class FusionNeck(nn.Module):
    """Top-down fusion: 1x1 laterals, upsample + add from coarse to fine, 3x3 smoothing, then upsampling steps.

    Args:
        in_channels: channels of the input levels, finest first (e.g. `[40, 112, 320]`).
        in_strides: strides of the input levels, finest first (e.g. `[8, 16, 32]`).
        channels: width of the fused map.
        output_stride: stride of the output; `in_strides[0]` divided by a power of two (e.g. 8 or 4).
    """

    def __init__(self, in_channels: list[int], in_strides: list[int], channels: int, output_stride: int) -> None:
        super().__init__()
        steps = math.log2(in_strides[0] / output_stride)
        if steps < 0 or steps != int(steps):
            raise ValueError(f"output stride {output_stride} is not the finest stride {in_strides[0]} / 2^k")
        self.output_stride = output_stride
        self.laterals = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(conv_bn_relu(channels, channels) for _ in in_channels[:-1])
        self.upsample = nn.ModuleList(conv_bn_relu(channels, channels) for _ in range(int(steps)))

    def forward(self, features: list[Tensor]) -> Tensor:
        """Fuse the levels.

        Args:
            features: maps (B, in_channels[l], H_l, W_l), finest first.

        Returns:
            (B, channels, H_0 * k, W_0 * k) with k = in_strides[0] / output_stride.
        """
        x = self.laterals[-1](features[-1])  # (B, D, H_L, W_L), coarsest
        for level in range(len(features) - 2, -1, -1):
            lateral = self.laterals[level](features[level])  # (B, D, H_l, W_l)
            x = lateral + F.interpolate(x, size=lateral.shape[-2:], mode="nearest")
            x = self.smooth[level](x)
        for block in self.upsample:
            x = block(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))  # (B, D, 2H, 2W)
        return x
