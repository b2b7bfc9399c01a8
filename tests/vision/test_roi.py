"""roi_features: shapes, values a reader can check by hand, argument errors."""

from __future__ import annotations

import pytest
import torch

from vlkd_cli.vision.roi import roi_features

STRIDES = [8, 16, 32]


def _constant_maps(batch: int = 2, size: int = 64) -> list[torch.Tensor]:
    """Level l is filled with the constant l + 1 on channel 0 and -(l + 1) on channel 1."""
    maps = []
    for level, stride in enumerate(STRIDES):
        fmap = torch.empty(batch, 2, size // stride, size // stride)
        fmap[:, 0], fmap[:, 1] = level + 1.0, -(level + 1.0)
        maps.append(fmap)
    return maps


def test_shape_is_regions_by_total_channels() -> None:
    maps = [torch.randn(2, c, 64 // s, 64 // s) for c, s in zip([3, 5, 7], STRIDES)]
    boxes = [torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 60.0, 40.0], [1.0, 2.0, 3.0, 4.0]]), torch.zeros(0, 4)]
    assert roi_features(maps, STRIDES, boxes).shape == (3, 15)
    assert roi_features(maps, STRIDES, [torch.zeros(0, 4), torch.zeros(0, 4)]).shape == (0, 15)


def test_constant_feature_map_gives_the_constant() -> None:
    boxes = [torch.tensor([[4.0, 4.0, 60.0, 60.0]]), torch.tensor([[10.0, 20.0, 30.0, 25.0], [0.0, 0.0, 64.0, 64.0]])]
    features = roi_features(_constant_maps(), STRIDES, boxes)
    expected = torch.tensor([1.0, -1.0, 2.0, -2.0, 3.0, -3.0]).expand(3, 6)
    assert torch.allclose(features, expected)


def test_linear_ramp_gives_the_box_centre_in_feature_coordinates() -> None:
    """On f(y, x) = x, the 4x4 mean of bilinear samples is f at the box centre: (x1 + x2) / 2 / stride - 0.5."""
    maps = [torch.arange(64 // s).float().expand(1, 1, 64 // s, 64 // s).clone() for s in STRIDES]
    box = torch.tensor([[16.0, 8.0, 48.0, 40.0]])  # centre x = 32 input pixels
    features = roi_features(maps, STRIDES, [box])
    assert torch.allclose(features, torch.tensor([[32 / s - 0.5 for s in STRIDES]]), atol=1e-6)


def test_regions_keep_image_order() -> None:
    maps = [torch.stack([torch.full((1, 4, 4), 1.0), torch.full((1, 4, 4), 2.0)]) for _ in range(1)]
    boxes = [torch.tensor([[0.0, 0.0, 8.0, 8.0]]), torch.tensor([[0.0, 0.0, 8.0, 8.0], [8.0, 8.0, 16.0, 16.0]])]
    assert roi_features(maps, [4], boxes).flatten().tolist() == [1.0, 2.0, 2.0]


def test_channels_last_maps_give_the_same_features() -> None:
    maps = [torch.randn(2, 6, 64 // s, 64 // s) for s in STRIDES]
    boxes = [torch.tensor([[3.0, 7.0, 50.0, 33.0]]), torch.tensor([[0.0, 0.0, 64.0, 64.0]])]
    last = [m.contiguous(memory_format=torch.channels_last) for m in maps]
    assert torch.allclose(roi_features(maps, STRIDES, boxes), roi_features(last, STRIDES, boxes), atol=1e-6)


def test_output_size_changes_the_sampling_not_the_shape() -> None:
    maps = [torch.randn(1, 4, 8, 8)]
    box = [torch.tensor([[0.0, 0.0, 64.0, 64.0]])]
    assert roi_features(maps, [8], box, output_size=7).shape == roi_features(maps, [8], box, output_size=2).shape
    assert not torch.allclose(roi_features(maps, [8], box, output_size=7), roi_features(maps, [8], box, output_size=1))


def test_argument_errors() -> None:
    maps = _constant_maps()
    with pytest.raises(ValueError, match="3 feature maps and 2 strides"):
        roi_features(maps, STRIDES[:2], [torch.zeros(0, 4)] * 2)
    with pytest.raises(ValueError, match="1 images but feature maps for 2"):
        roi_features(maps, STRIDES, [torch.zeros(0, 4)])
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        roi_features(maps, STRIDES, [torch.zeros(3), torch.zeros(0, 4)])
