"""Can a model read a regions artifact's features? The one check every stage that binds a model directory to
regions makes (finetune from a vlkd dir, adapt-teacher, distill, DCD, the eval commands).

A model records the feature dimension it takes (`region_feature_dim`) and the backbone its features came from
(`feature_backbone` + `feature_backbone_sha256`); a regions artifact records both backbones of its two feature
sides. Features of another dimension cannot be read at all, and features of other backbone weights would be read
silently wrong, so both are exit 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.errors import InputError

SIDES = ("student", "teacher")


def check_reads_features(config: dict[str, Any], regions: Regions, side: str, where: Path) -> None:
    """Refuse (exit 3) a model that cannot read the `side` features of `regions`.

    Args:
        config: The model's config.json.
        regions: The regions artifact.
        side: "student" or "teacher": which features the model will read.
        where: The model directory, named by a dimension error.

    Raises:
        InputError: Another feature dimension, or other backbone weights (when both are recorded).
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    dim = regions.student_dim if side == "student" else regions.teacher_dim
    if int(config.get("region_feature_dim", -1)) != dim:
        raise InputError(
            f"the model takes {config.get('region_feature_dim')}-d features, the regions' {side} features are "
            f"{dim}-d (extracted with another backbone?)",
            where,
        )
    check_backbone_weights(config, regions, side)


def check_backbone_weights(config: dict[str, Any], regions: Regions, side: str) -> None:
    """Refuse (exit 3) features that come from other backbone weights than the model was trained on."""
    wanted = config.get("feature_backbone_sha256")
    found = regions.metadata.get(f"vlkd.{side}_backbone_sha256")
    if wanted and found and wanted != found:
        raise InputError(
            f"the regions' {side} features come from {regions.metadata.get(f'vlkd.{side}_backbone')} (weights "
            f"{found[:12]}), the model was trained on {config.get('feature_backbone')} (weights {wanted[:12]})",
            regions.path,
        )
