"""The CenterNet student detector: shapes, target encoding, decoding, losses and NMS."""

from __future__ import annotations

import math

import pytest
import torch

from vlkd_cli.vision.backbone import create_backbone
from vlkd_cli.vision.centernet import decode_detections, encode_targets
from vlkd_cli.vision.detector import Detector
from vlkd_cli.vision.roi import roi_features

from .scenes import make_scenes

NUM_CLASSES = 3


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.manual_seed(0)
    return Detector(create_backbone("resnet10t", seed=0), NUM_CLASSES)


def _outputs_from_targets(boxes: list[torch.Tensor], labels: list[torch.Tensor], grid: int, stride: int) -> dict:
    """Head outputs a perfect detector would give: logits from the target heatmap, sizes and offsets at centres."""
    targets = encode_targets(boxes, labels, num_classes=NUM_CLASSES, grid=(grid, grid), stride=stride)
    heat = targets.heatmap.clamp(1e-4, 1 - 1e-4)
    size = torch.zeros(len(boxes), 2, grid, grid)
    offset = torch.zeros(len(boxes), 2, grid, grid)
    size[targets.batch_index, :, targets.cell_y, targets.cell_x] = targets.log_size
    offset[targets.batch_index, :, targets.cell_y, targets.cell_x] = targets.offset
    return {"heatmap": torch.log(heat / (1 - heat)), "size": size, "offset": offset}


def test_forward_shapes(detector: Detector) -> None:
    outputs = detector(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    assert outputs["heatmap"].shape == (2, NUM_CLASSES, 16, 16)
    assert outputs["size"].shape == outputs["offset"].shape == (2, 2, 16, 16)
    assert [tuple(f.shape) for f in outputs["features"]] == [(2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2)]


def test_inputs_of_any_size_are_padded_and_boxes_clipped(detector: Detector) -> None:
    images = torch.randint(0, 256, (1, 3, 50, 70), dtype=torch.uint8)
    assert detector(images)["heatmap"].shape == (1, NUM_CLASSES, 16, 24)  # padded to 64 x 96
    boxes = detector.detect(images, score_threshold=0.0)[0]["boxes"]
    assert len(boxes) and (boxes[:, 0::2] <= 70).all() and (boxes[:, 1::2] <= 50).all() and (boxes >= 0).all()


def test_encode_targets_places_a_peak_and_regressions() -> None:
    box = torch.tensor([[0.0, 16.0, 40.0, 32.0]])  # centre (20, 24) px = cell (5.0, 6.0) at stride 4
    targets = encode_targets([box], [torch.tensor([2])], num_classes=NUM_CLASSES, grid=(16, 16), stride=4)
    assert targets.heatmap[0, 2, 6, 5] == 1 and targets.heatmap[0, :2].sum() == 0
    assert targets.heatmap.eq(1).sum() == 1
    assert (targets.cell_x.item(), targets.cell_y.item()) == (5, 6)
    assert torch.allclose(targets.offset, torch.zeros(1, 2))
    assert torch.allclose(targets.log_size, torch.tensor([[math.log(10.0), math.log(4.0)]]))
    assert targets.heatmap[0, 2, 6, 6] > targets.heatmap[0, 2, 7, 5]  # wide box: the Gaussian is wider in x ...
    assert targets.heatmap[0, 2, 6, 6] > 0.5  # ... and spreads to the next column


def test_degenerate_boxes_are_dropped() -> None:
    boxes = torch.tensor([[5.0, 5.0, 5.5, 30.0], [1.0, 1.0, 20.0, 20.0]])
    targets = encode_targets([boxes], [torch.tensor([0, 1])], num_classes=NUM_CLASSES, grid=(8, 8), stride=4)
    assert targets.batch_index.tolist() == [0] and targets.heatmap[0, 0].max() == 0


def test_decoding_perfect_outputs_gives_back_the_boxes() -> None:
    boxes = [torch.tensor([[3.0, 5.0, 40.0, 30.0], [33.0, 36.0, 60.0, 63.0]]), torch.tensor([[0.0, 0.0, 64.0, 64.0]])]
    labels = [torch.tensor([0, 2]), torch.tensor([1])]
    outputs = _outputs_from_targets(boxes, labels, grid=16, stride=4)
    detections = decode_detections(outputs, stride=4, image_size=(64, 64), score_threshold=0.5)
    for found, expected_boxes, expected_labels in zip(detections, boxes, labels):
        order = found["labels"].argsort()
        assert found["labels"][order].tolist() == expected_labels.tolist()
        assert torch.allclose(found["boxes"][order], expected_boxes, atol=1e-4)
        assert found["boxes"].dtype == torch.float32 and found["labels"].dtype == torch.int64


def test_nms_is_per_class() -> None:
    same = [torch.tensor([[10.0, 10.0, 40.0, 40.0], [12.0, 10.0, 42.0, 40.0]])]
    for classes, expected in (([1, 1], 1), ([1, 2], 2)):
        outputs = _outputs_from_targets(same, [torch.tensor(classes)], grid=16, stride=4)
        found = decode_detections(outputs, stride=4, image_size=(64, 64), score_threshold=0.5, nms_iou=0.5)[0]
        assert len(found["boxes"]) == expected


def test_detect_contract(detector: Detector) -> None:
    detector.train()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    detections = detector.detect(images, score_threshold=0.0, max_detections=7)
    assert detector.training  # mode restored
    assert len(detections) == 2
    for found in detections:
        n = len(found["scores"])
        assert 0 < n <= 7 and found["boxes"].shape == (n, 4) and found["labels"].shape == (n,)
        assert (found["scores"][:-1] >= found["scores"][1:]).all()
        assert ((found["labels"] >= 0) & (found["labels"] < NUM_CLASSES)).all()
    high = detector.detect(images, score_threshold=0.99)
    assert all((d["scores"] >= 0.99).all() for d in high)


def test_channels_last_detector(detector: Detector) -> None:
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    expected = detector.detect(images, score_threshold=0.0)[0]
    fast = Detector.from_config(detector.config)
    fast.load_state_dict(detector.state_dict())
    found = fast.to(memory_format=torch.channels_last).detect(images, score_threshold=0.0)[0]
    assert torch.allclose(found["scores"], expected["scores"], atol=1e-5)


def test_loss_terms_and_gradients(detector: Detector) -> None:
    scenes = make_scenes(4, 64, seed=1, num_classes=NUM_CLASSES)
    images = torch.stack([image for image, _, _ in scenes])
    targets = [{"boxes": boxes, "labels": labels} for _, boxes, labels in scenes]
    detector.zero_grad()
    losses = detector.loss(detector(images), targets)
    assert set(losses) == {"loss", "heatmap_loss", "size_loss", "offset_loss"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    assert torch.isclose(losses["loss"], losses["heatmap_loss"] + losses["size_loss"] + losses["offset_loss"])
    losses["loss"].backward()
    assert detector.backbone.model.conv1[0].weight.grad.abs().sum() > 0
    assert detector.size_head[-1].weight.grad.abs().sum() > 0


def test_loss_without_objects(detector: Detector) -> None:
    outputs = detector(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    losses = detector.loss(outputs, [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}])
    assert losses["size_loss"] == 0 and losses["heatmap_loss"] > 0
    losses["loss"].backward()


def test_config_round_trip(detector: Detector) -> None:
    rebuilt = Detector.from_config(detector.config, seed=0)
    assert (
        rebuilt.config
        == detector.config
        == {"backbone": "resnet10t", "num_classes": NUM_CLASSES, "channels": 64, "output_stride": 4}
    )
    rebuilt.load_state_dict(detector.state_dict())
    assert rebuilt.backbone.weights_sha256 == detector.backbone.weights_sha256


def test_detections_feed_roi_features(detector: Detector) -> None:
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    detector.eval()
    with torch.no_grad():
        outputs = detector(images)
    detections = detector.decode(outputs, (64, 64), score_threshold=0.0, max_detections=5)
    features = roi_features(outputs["features"], detector.backbone.feature_strides, [d["boxes"] for d in detections])
    assert features.shape == (sum(len(d["boxes"]) for d in detections), 128 + 256 + 512)


def test_stride_8_head() -> None:
    small = Detector(create_backbone("resnet10t", seed=0), 2, channels=16, output_stride=8)
    assert small(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))["heatmap"].shape == (1, 2, 8, 8)
    with pytest.raises(ValueError, match="output stride 3"):
        Detector(create_backbone("resnet10t", seed=0), 2, output_stride=3)
