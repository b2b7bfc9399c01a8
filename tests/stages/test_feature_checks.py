"""A model bound to regions must read features of its dimension and of the backbone weights it was trained on."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlkd_cli.artifacts.feature_checks import check_reads_features
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.errors import InputError


@pytest.mark.parametrize("side", ["student", "teacher"])
def test_matching_features_pass_and_mismatches_are_exit_3(demo_regions, side):
    regions = Regions(demo_regions)
    dim = regions.student_dim if side == "student" else regions.teacher_dim
    sha = regions.metadata[f"vlkd.{side}_backbone_sha256"]
    good = {"region_feature_dim": dim, "feature_backbone_sha256": sha, "feature_backbone": "x"}
    check_reads_features(good, regions, side, Path("model"))
    check_reads_features({"region_feature_dim": dim}, regions, side, Path("model"))  # no weights recorded: ok
    with pytest.raises(InputError, match=f"the regions' {side} features are {dim}-d") as err:
        check_reads_features({**good, "region_feature_dim": dim + 1}, regions, side, Path("model"))
    assert err.value.exit_code == 3 and "model" in str(err.value)
    with pytest.raises(InputError, match=f"{side} features come from"):
        check_reads_features({**good, "feature_backbone_sha256": "0" * 64}, regions, side, Path("model"))
    with pytest.raises(ValueError):
        check_reads_features(good, regions, "both", Path("model"))
