"""A timm CNN as a multi-scale feature extractor: the last three reductions (e.g. strides 8, 16, 32).

>>> backbone = create_backbone("resnet10t", seed=0)
>>> images = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
>>> [tuple(f.shape) for f in backbone(backbone.preprocess(images))]
[(2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2)]

The whole timm model is kept (classifier included), so its state dict is timm's and ImageNet-classifier checks
stay possible through `backbone.model`; features come from `forward_intermediates`, which stops after the last
requested stage. The hub is never reached: models are built with `pretrained=False` and weights come from a file
or from the `pretrained` extra.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vlkd_cli.errors import UsageError
from vlkd_cli.vision.pretrained import load_packaged_state_dict, packaged_weights_path
from vlkd_cli.vision.weights import classifier_prefixes, load_weights_into, read_state_dict, state_dict_sha256

NUM_LEVELS = 3


class Backbone(nn.Module):
    """Multi-scale feature maps of a timm CNN, with the model's own input normalisation.

    Attributes:
        name: the timm model name.
        model: the timm model (its `state_dict()` keys are timm's).
        feature_indices: `forward_intermediates` indices of the returned levels.
        feature_channels: channels of each returned level, e.g. `[40, 112, 320]`.
        feature_strides: reduction of each returned level, e.g. `[8, 16, 32]`.
        mean, std: per-channel normalisation of images scaled to [0, 1] (from timm's pretrained_cfg).
    """

    def __init__(self, name: str, model: nn.Module) -> None:
        super().__init__()
        self.name = name
        self.model = model
        info = list(model.feature_info)  # timm FeatureInfo or list of dicts: num_chs, reduction, module
        strides = [int(level["reduction"]) for level in info[-NUM_LEVELS:]]
        if len(info) < NUM_LEVELS or any(a >= b for a, b in zip(strides, strides[1:])):
            raise UsageError(f"backbone {name!r} is not a multi-scale CNN (feature strides {strides})")
        self.feature_indices = list(range(len(info) - NUM_LEVELS, len(info)))
        self.feature_channels = [int(level["num_chs"]) for level in info[-NUM_LEVELS:]]
        self.feature_strides = strides
        cfg = getattr(model, "pretrained_cfg", None) or {}
        self.mean = tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
        # Non-persistent: they follow .to(device) but stay out of the state dict (and so out of the weights hash).
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> list[Tensor]:
        """Feature maps of normalised images.

        Args:
            images: (B, 3, H, W) float, already normalised (see `preprocess`).

        Returns:
            `NUM_LEVELS` maps, level i of shape (B, feature_channels[i], ~H / s_i, ~W / s_i), s_i = feature_strides[i].
            A model converted with `.to(memory_format=torch.channels_last)` gets channels_last inputs.
        """
        if self.is_channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model.forward_intermediates(
            images, indices=self.feature_indices, intermediates_only=True, stop_early=True
        )

    def preprocess(self, images: Tensor) -> Tensor:
        """Normalise images for this backbone.

        Args:
            images: (B, 3, H, W) uint8 in [0, 255], or float already scaled to [0, 1].

        Returns:
            (B, 3, H, W) float32 `(images / 255 - mean) / std` on the backbone's device, memory format kept.
        """
        x = images.to(device=self._mean.device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return (x - self._mean) / self._std  # (B, 3, H, W)

    @property
    def is_channels_last(self) -> bool:
        """Whether the first 4-D weight (the stem conv) is stored channels_last."""
        weight = next((p for p in self.model.parameters() if p.ndim == 4), None)
        if weight is None:
            return False
        return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()

    @property
    def weights_sha256(self) -> str:
        """sha256 of the feature weights: timm state dict without the classifier head, computed on each access."""
        return state_dict_sha256(self.model.state_dict(), exclude_prefixes=classifier_prefixes(self.model))


def _build_timm_model(name: str, seed: int | None) -> nn.Module:
    """`timm.create_model(name, pretrained=False)`, with a seeded init that leaves the global RNG untouched."""
    import timm

    if not timm.is_model(name.split(".", 1)[0]):
        raise UsageError(f"unknown backbone {name!r} (not a timm model name; see `timm.list_models()`)")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return timm.create_model(name, pretrained=False)


def create_backbone(
    name: str,
    *,
    weights: Path | None = None,
    pretrained: bool = False,
    seed: int | None = None,
) -> Backbone:
    """Build a timm backbone by name, randomly initialised or with weights from a file or the `pretrained` extra.

    Args:
        name: any timm CNN name, e.g. `tf_efficientnet_lite0`, `resnet10t`, `efficientnet_b0`.
        weights: a `.safetensors` file or a `torch.save`d state dict (read with `weights_only=True`); a classifier
            head of another shape is tolerated, wrappers and prefixes are removed (see `vision.weights`).
        pretrained: load the real ImageNet weights of the `pretrained` extra (tf_efficientnet_lite0/1/2 only).
        seed: seed of the random initialisation (the global RNG is left as it was).

    Raises:
        UsageError: unknown name, both `weights` and `pretrained`, a missing file, no packaged weights for `name`
            or the extra not installed (exit 2).
        InputError: the weights do not fit (exit 3).
    """
    if weights is not None and pretrained:
        raise UsageError("give either backbone weights or --pretrained, not both")
    packaged = packaged_weights_path(name) if pretrained else None  # fail fast, before building the model
    model = _build_timm_model(name, seed)
    if weights is not None:
        load_weights_into(model, read_state_dict(Path(weights)), source=weights)
    elif packaged is not None:
        model.load_state_dict(load_packaged_state_dict(name, model.state_dict()))
    return Backbone(name, model)
