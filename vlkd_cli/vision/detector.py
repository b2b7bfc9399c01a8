"""The student detector: a timm backbone, a small top-down fusion neck and CenterNet heads.

Why CenterNet (anchor-free, one output map) rather than FCOS: one fine map (stride 4) with three light heads is
the cheapest dense head there is, so the detector stays a small part of the student's latency (the point of a
student); it has no anchors, level assignment or centre-ness branch to tune; its 3x3 peak picking already removes
most duplicates (per-class NMS is still applied, cheaply, for overlapping shapes); and its stride-4 map locates the
small objects of low-resolution inputs better than FCOS's stride-8 finest level.

>>> detector = Detector(create_backbone("resnet10t", seed=0), num_classes=3)
>>> outputs = detector(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
>>> tuple(outputs["heatmap"].shape)
(2, 3, 16, 16)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vlkd_cli.artifacts.model_dir import load_model_dir
from vlkd_cli.errors import InputError
from vlkd_cli.vision.backbone import Backbone, create_backbone
from vlkd_cli.vision.centernet import centernet_loss, decode_detections, encode_targets, heatmap_bias_init
from vlkd_cli.vision.neck import FusionNeck


def _head(channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv + ReLU + 1x1 conv to `out_channels`."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, out_channels, 1),
    )


class Detector(nn.Module):
    """Anchor-free, class-aware detector (CenterNet heads on a fused stride-4 map).

    Args:
        backbone: a `Backbone` (random, file or packaged weights).
        num_classes: C; class ids are 0..C-1 (the caller maps them to dataset category ids).
        channels: width of the neck and heads.
        output_stride: stride of the heads' map: the backbone's finest stride divided by a power of two (4 or 8).
    """

    def __init__(self, backbone: Backbone, num_classes: int, *, channels: int = 64, output_stride: int = 4) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.channels = channels
        self.output_stride = output_stride
        self.neck = FusionNeck(backbone.feature_channels, backbone.feature_strides, channels, output_stride)
        self.heatmap_head = _head(channels, num_classes)
        self.size_head = _head(channels, 2)
        self.offset_head = _head(channels, 2)
        nn.init.constant_(self.heatmap_head[-1].bias, heatmap_bias_init())

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments; `Detector.from_config(config)` rebuilds the architecture."""
        return {
            "backbone": self.backbone.name,
            "num_classes": self.num_classes,
            "channels": self.channels,
            "output_stride": self.output_stride,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], *, seed: int | None = None) -> Detector:
        """A randomly initialised detector of the architecture `config` describes (load a state dict after)."""
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            backbone = create_backbone(config["backbone"], seed=seed)
            return cls(
                backbone,
                int(config["num_classes"]),
                channels=int(config.get("channels", 64)),
                output_stride=int(config.get("output_stride", 4)),
            )

    def forward(self, images: Tensor) -> dict[str, Any]:
        """Run backbone, neck and heads.

        Args:
            images: (B, 3, H, W) uint8 (or float in [0, 1]); H and W are padded bottom/right to a multiple of the
                backbone's coarsest stride, so any size works.

        Returns:
            `heatmap` (B, C, h, w) logits, `size` (B, 2, h, w) log(side / stride), `offset` (B, 2, h, w) sub-cell
            centre offsets, with h = ceil(H / 32) * 32 / stride; `features`: the backbone maps (list of
            (B, C_l, H_l, W_l)) of the padded input, usable with `roi_features` and boxes in input pixels.
        """
        x = self.backbone.preprocess(images)  # (B, 3, H, W) normalised
        multiple = self.backbone.feature_strides[-1]
        pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))  # zeros = the mean colour after normalisation
        features = self.backbone(x)
        fused = self.neck(features)  # (B, D, h, w)
        return {
            "heatmap": self.heatmap_head(fused),  # (B, C, h, w)
            "size": self.size_head(fused),  # (B, 2, h, w)
            "offset": self.offset_head(fused),  # (B, 2, h, w)
            "features": features,
        }

    def loss(self, outputs: dict[str, Any], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Training losses of a batch.

        Args:
            outputs: from `forward`.
            targets: per image `boxes` (n, 4) xyxy in input pixels and `labels` (n,) int64 0..C-1.

        Returns:
            `loss` (total), `heatmap_loss` (focal), `size_loss` (L1 log-size), `offset_loss` (L1): scalars.
        """
        heatmap = outputs["heatmap"]
        encoded = encode_targets(
            [t["boxes"].to(heatmap.device) for t in targets],
            [t["labels"].to(heatmap.device) for t in targets],
            num_classes=self.num_classes,
            grid=(heatmap.shape[-2], heatmap.shape[-1]),
            stride=self.output_stride,
        )
        return centernet_loss(outputs, encoded)

    def decode(
        self,
        outputs: dict[str, Any],
        image_size: tuple[int, int],
        *,
        score_threshold: float = 0.05,
        max_detections: int = 100,
        nms_iou: float = 0.5,
    ) -> list[dict[str, Tensor]]:
        """Detections from `forward` outputs (see `detect`); `image_size` = (H, W) of the unpadded input."""
        return decode_detections(
            outputs,
            stride=self.output_stride,
            image_size=image_size,
            score_threshold=score_threshold,
            max_detections=max_detections,
            nms_iou=nms_iou,
        )

    @torch.no_grad()
    def detect(
        self,
        images: Tensor,
        *,
        score_threshold: float = 0.05,
        max_detections: int = 100,
        nms_iou: float = 0.5,
    ) -> list[dict[str, Tensor]]:
        """Detect objects (in eval mode; the module's previous mode is restored).

        Args:
            images: (B, 3, H, W) uint8 (or float in [0, 1]).
            score_threshold: minimum score kept.
            max_detections: at most this many boxes per image.
            nms_iou: per-class NMS IoU (torchvision `batched_nms`).

        Returns:
            Per image: `boxes` (n, 4) float32 xyxy in input pixels (clipped to H, W), `scores` (n,) descending,
            `labels` (n,) int64 0..C-1.
        """
        with _eval_mode(self):
            outputs = self(images)
        return self.decode(
            outputs,
            (images.shape[-2], images.shape[-1]),
            score_threshold=score_threshold,
            max_detections=max_detections,
            nms_iou=nms_iou,
        )


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def load_detector(path: Path) -> tuple[Detector, dict[str, Any]]:
    """Rebuild a detector from its directory (exit 3 if the weights do not fit the recorded architecture)."""
    config, tensors, _ = load_model_dir(path, "detector")
    try:
        detector = Detector.from_config(config["detector"])
        detector.load_state_dict(tensors, strict=True)
    except (KeyError, RuntimeError, ValueError) as err:
        raise InputError(f"detector weights do not fit its config.json: {str(err).splitlines()[0]}", path) from err
    return detector.eval(), config
