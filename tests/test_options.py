"""config_from_options: every option lands in a field of its name (nested configs included) or fails loudly."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from vlkd_cli.options import config_from_options


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-4
    seed: int = 0


@dataclass(frozen=True)
class Other:
    split: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class Outer:
    task: str
    inner: Inner = field(default_factory=Inner)
    other: Other = field(default_factory=Other)
    device: str = "auto"


def test_options_go_to_every_field_of_their_name() -> None:
    cfg = config_from_options(Outer, {"task": "caption", "lr": 0.5, "seed": 3, "split": "train"})
    assert cfg == Outer("caption", Inner(lr=0.5, seed=3), Other(split="train", seed=3))
    assert config_from_options(Outer, {"task": "vqa"}) == Outer("vqa")  # defaults kept


def test_an_option_without_a_field_is_a_loud_error() -> None:
    with pytest.raises(TypeError, match=r"options \['lr_max'\] match no field of Outer or of its nested Inner, Other"):
        config_from_options(Outer, {"task": "caption", "lr_max": 1.0})


def test_ignored_names_and_prebuilt_nested_configs() -> None:
    cfg = config_from_options(Outer, {"task": "caption", "loss": ["a=1"], "inner": Inner(lr=2.0)}, ignore=["loss"])
    assert cfg.inner == Inner(lr=2.0)
    with pytest.raises(TypeError, match="are fields and must not be ignored"):
        config_from_options(Outer, {"task": "caption"}, ignore=["device"])


def test_a_missing_required_field_still_fails() -> None:
    with pytest.raises(TypeError):
        config_from_options(Outer, {"lr": 1.0})
