"""Each default is defined once, in the command's config dataclass: every option's default in `--help` is the
config field's default (adapt-teacher's gentler learning rate is its own, named constant)."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest

from vlkd_cli.cli import benchmark_latency, distill, eval, extract_regions, finetune, import_regions, train_detector
from vlkd_cli.stages.benchmark_latency import LatencyConfig
from vlkd_cli.stages.eval_caption import EvalCaptionConfig
from vlkd_cli.stages.eval_retrieval import EvalRetrievalConfig
from vlkd_cli.stages.eval_vqa import EvalVqaConfig
from vlkd_cli.stages.extract_regions import ExtractConfig
from vlkd_cli.stages.import_regions import ImportConfig
from vlkd_cli.stages.train_detector import TrainDetectorConfig
from vlkd_cli.stages.training_configs import ADAPT_TEACHER_LR, DistillConfig, FinetuneConfig

COMMANDS = [
    (finetune.finetune_cmd, FinetuneConfig, {}),
    (finetune.adapt_teacher_cmd, FinetuneConfig, {"lr": ADAPT_TEACHER_LR}),
    (distill.distill_cmd, DistillConfig, {}),
    (eval.eval_caption_cmd, EvalCaptionConfig, {}),
    (eval.eval_vqa_cmd, EvalVqaConfig, {}),
    (eval.eval_retrieval_cmd, EvalRetrievalConfig, {}),
    (extract_regions.extract_regions_cmd, ExtractConfig, {}),
    (import_regions.import_regions_cmd, ImportConfig, {}),
    (train_detector.train_detector_cmd, TrainDetectorConfig, {}),
    (benchmark_latency.benchmark_latency_cmd, LatencyConfig, {}),
]


def field_defaults(cls: type) -> dict[str, object]:
    """Field name → default of `cls` and of its nested dataclass fields (fields without a default left out)."""
    hints = typing.get_type_hints(cls)
    defaults = {}
    for f in dataclasses.fields(cls):
        kind = hints.get(f.name)
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            defaults.update(field_defaults(kind))
        elif f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
    return defaults


@pytest.mark.parametrize(("command", "config", "own"), COMMANDS, ids=[c.__name__ for c, _, _ in COMMANDS])
def test_option_defaults_are_the_config_defaults(command, config, own) -> None:
    defaults = field_defaults(config)
    options = {name: p.default for name, p in inspect.signature(command).parameters.items()
               if p.default is not inspect.Parameter.empty}  # fmt: skip
    differ = {name: (value, defaults[name]) for name, value in options.items()
              if name in defaults and name not in own and value != defaults[name]}  # fmt: skip
    assert not differ, f"{command.__name__}: option default vs config default {differ}"
    assert all(options[name] == value for name, value in own.items())
    assert len(set(options) & set(defaults)) >= 3  # the comparison saw the options


def test_help_shows_the_training_defaults() -> None:
    from tests.conftest import invoke

    result = invoke(["finetune", "--help"])
    assert result.exit_code == 0
    assert "0.0001" in result.output and "linear" in result.output  # TrainConfig.lr, TrainConfig.schedule
    adapt = invoke(["adapt-teacher", "--help"])
    assert "5e-05" in adapt.output
