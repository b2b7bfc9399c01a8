"""The models `vlkd benchmark-latency` times, each with the image backbone of its lineage.

A model directory records where its region features came from (`config.json`: `features`, `feature_backbone`,
`feature_backbone_sha256`, and `inputs`, the regions artifact it was trained on). When that artifact is still on
disk its metadata gives the rest of the recipe: image size, RoIAlign grid, proposal selection, categories (the object
tags), and how the backbone was made (a weights file, the packaged ImageNet weights, or a seeded random
initialisation). The backbone is rebuilt from that recipe; its weights hash says whether they are the lineage's.
Weights do not change the amount of compute, so a backbone whose weights cannot be found is built with random
weights and reported as `"random (timing only)"`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vlkd_cli.artifacts.header import read_header
from vlkd_cli.artifacts.io import input_record
from vlkd_cli.artifacts.model_dir import load_model_dir
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models.factory import model_from_config
from vlkd_cli.models.precision import to_precision
from vlkd_cli.models.task_model import TaskModel
from vlkd_cli.models.tokenizer import load_tokenizer
from vlkd_cli.vision.backbone import Backbone, create_backbone
from vlkd_cli.vision.weights import classifier_prefixes

DEFAULT_IMAGE_SIZE = 448  # as extract-regions when neither the lineage nor a detector fixes it
DEFAULT_SELECTION = {"score_threshold": 0.2, "nms_iou": 0.5, "max_regions": 50}  # extract-regions' defaults
DEFAULT_ROI_SIZE = 4
RANDOM_WEIGHTS = "random (timing only)"
LINEAGE_WEIGHTS = "lineage (sha256 matches)"


@dataclass
class Lineage:
    """What a model's regions were made with (defaults where the regions artifact is gone)."""

    side: str  # "student" or "teacher": which features of the regions the model reads
    backbone: str  # timm name
    backbone_sha256: str | None
    image_size: int | None = None
    roi_size: int = DEFAULT_ROI_SIZE
    selection: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SELECTION))
    categories: list[dict] = field(default_factory=list)
    recipe: dict[str, Any] = field(default_factory=dict)  # the regions' `vlkd.config` (seed, weights, pretrained)
    regions: Path | None = None


@dataclass
class BenchModel:
    """A loaded model (eval mode, on its device) with its lineage backbone."""

    arg: str  # the --model argument as given
    path: Path
    config: dict[str, Any]
    model: TaskModel
    tokenizer: Any
    lineage: Lineage
    backbone: Backbone | None  # None: region features come from the detector's own backbone maps
    backbone_weights: str
    record: dict[str, str]
    transformer_parameters: int = 0  # counted before any int8 conversion (quantised weights are no parameters)
    precision: str = "fp32"

    @property
    def task(self) -> str:
        return str(self.config.get("task"))

    @property
    def is_dual(self) -> bool:
        return self.config.get("arch", "cross") == "dual"

    def parameters(self, detector: torch.nn.Module | None) -> dict[str, int | None]:
        """Parameter counts: transformer (the task model), backbone (without its unused classifier), detector."""
        counts: dict[str, int | None] = {"transformer": self.transformer_parameters or _count(self.model)}
        counts["backbone"] = 0 if self.backbone is None else _backbone_count(self.backbone)
        counts["detector"] = None if detector is None else _count(detector)
        counts["total"] = sum(v for v in counts.values() if v)
        return counts


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _backbone_count(backbone: Backbone) -> int:
    """Parameters of the feature layers (the timm classifier head is never run by `forward_intermediates`)."""
    skip = classifier_prefixes(backbone.model)
    return sum(p.numel() for name, p in backbone.model.named_parameters() if not name.startswith(skip))


def read_lineage(path: Path, config: dict[str, Any]) -> Lineage:
    """The model's feature lineage from its config and, when still on disk, its regions artifact's metadata."""
    side = str(config.get("features") or "student")
    backbone = config.get("feature_backbone")
    if not backbone:
        raise InputError("config.json records no feature_backbone: the backbone to time is unknown", path)
    lineage = Lineage(side=side, backbone=str(backbone), backbone_sha256=config.get("feature_backbone_sha256"))
    for record in config.get("inputs") or []:
        regions = Path(str(record.get("path", "")))
        if record.get("kind") == "regions" and regions.is_file():
            _apply_regions_metadata(lineage, regions)
            break
    return lineage


def _apply_regions_metadata(lineage: Lineage, regions: Path) -> None:
    try:
        metadata = read_header(regions).metadata
        recipe = json.loads(metadata.get("vlkd.config", "{}"))
        categories = json.loads(metadata.get("vlkd.categories", "[]"))
    except (InputError, json.JSONDecodeError):
        return  # a broken lineage file only costs the defaults
    lineage.regions, lineage.recipe = regions, recipe if isinstance(recipe, dict) else {}
    lineage.categories = categories if isinstance(categories, list) else []
    if str(metadata.get("vlkd.image_size", "")).isdigit():
        lineage.image_size = int(metadata["vlkd.image_size"])
    if str(metadata.get("vlkd.roi_size", "")).isdigit():
        lineage.roi_size = int(metadata["vlkd.roi_size"])
    for key in DEFAULT_SELECTION:
        if isinstance(lineage.recipe.get(key), int | float):
            lineage.selection[key] = lineage.recipe[key]


def lineage_backbone(lineage: Lineage, path: Path) -> tuple[Backbone, str]:
    """Rebuild the lineage backbone (weights file, packaged weights or seeded random init) and say whose weights."""
    recipe, side = lineage.recipe, lineage.side
    weights = recipe.get(f"{side}_backbone_weights")
    weights = Path(weights) if weights and Path(weights).is_file() else None
    seed = int(recipe.get("seed", 0) or 0) + (1 if side == "teacher" else 0)  # extract-regions' seeds
    pretrained = bool(recipe.get("pretrained")) and weights is None
    try:
        backbone = create_backbone(lineage.backbone, weights=weights, pretrained=pretrained, seed=seed)
    except UsageError as err:
        if not pretrained:
            raise InputError(f"the recorded feature_backbone cannot be built: {err}", path) from err
        backbone = create_backbone(lineage.backbone, seed=seed)  # the `pretrained` extra is not installed here
    status = LINEAGE_WEIGHTS if lineage.backbone_sha256 == backbone.weights_sha256 else RANDOM_WEIGHTS
    return backbone, status


def load_bench_model(arg: str, *, detector_backbone: Backbone | None, device: torch.device,
                     precision: str = "fp32") -> BenchModel:  # fmt: skip
    """Load `--model arg` for inference with its lineage backbone, the transformer converted for `precision`
    (`models.precision.to_precision`: int8 quantises its Linear layers; the CNNs have none).

    With a detector whose backbone is the model's lineage backbone (a student reading its detector's features, or
    any model given its own detector of that backbone), the features are pooled from the detector's own maps, as
    extract-regions does with --detector: no second backbone is run.

    Raises:
        UsageError: not a directory (exit 2).
        InputError: not a model directory, a newer schema, weights that do not fit, no recorded backbone, or a
            backbone whose feature size is not the model's (exit 3).
    """
    path = Path(arg)
    config, weights, _ = load_model_dir(path, "model")
    model = model_from_config(config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise InputError(f"model.safetensors does not fit config.json: {str(err).splitlines()[0]}", path) from err
    transformer_parameters = _count(model)
    model = to_precision(model.to(device).eval(), precision, device)
    lineage = read_lineage(path, config)
    shares = detector_backbone is not None and detector_backbone.name == lineage.backbone
    if shares:
        backbone, channels = None, detector_backbone.feature_channels
        same = lineage.backbone_sha256 == detector_backbone.weights_sha256
        status = "the detector's backbone" + (" (sha256 matches)" if same else " (other weights than the lineage)")
    else:
        backbone, status = lineage_backbone(lineage, path)
        backbone = backbone.to(device).eval()
        channels = backbone.feature_channels
    if sum(channels) != int(config.get("region_feature_dim", -1)):
        raise InputError(
            f"the recorded backbone {lineage.backbone} gives {sum(channels)}-d region features, the model takes "
            f"{config.get('region_feature_dim')}-d",
            path,
        )
    return BenchModel(arg, path, config, model, load_tokenizer(path), lineage, backbone, status,
                      input_record(path, "model"), transformer_parameters, precision)  # fmt: skip
