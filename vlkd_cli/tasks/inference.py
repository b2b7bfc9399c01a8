"""A trained model directory, ready for inference on a regions artifact (the `--model DIR --regions R` path of
the eval commands).

The model reads the side of the regions it was trained on (`features`: student or teacher); the feature
dimension and, when both are recorded, the backbone weights must match (exit 3 otherwise: features of another
backbone would be silently meaningless to the model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vlkd_cli.artifacts.feature_checks import check_reads_features
from vlkd_cli.artifacts.io import input_record
from vlkd_cli.artifacts.model_dir import load_model_dir
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.vl_datasets import VLCollator
from vlkd_cli.errors import InputError
from vlkd_cli.models.factory import model_from_config
from vlkd_cli.models.precision import to_precision
from vlkd_cli.models.tokenizer import load_tokenizer


@dataclass
class InferenceModel:
    """A model in eval mode on its device, its tokenizer, config and a collator over the regions."""

    model: torch.nn.Module
    tokenizer: Any
    config: dict[str, Any]
    collator: VLCollator
    device: torch.device
    record: dict[str, str]  # lineage record of the model directory

    @property
    def is_dual(self) -> bool:
        return self.config.get("arch", "cross") == "dual"

    @property
    def side(self) -> str:
        """The regions' feature side the model reads: student or teacher."""
        return self.config.get("features", "student")


def check_model_regions(config: dict[str, Any], regions: Regions, path: Path) -> str:
    """The side of the regions the model reads (its `features`); exit 3 if it cannot read them."""
    side = config.get("features", "student")
    check_reads_features(config, regions, side, path)
    return side


def load_inference_model(path: Path, regions: Regions, *, tasks: Sequence[str], device: torch.device,
                         precision: str = "fp32") -> InferenceModel:  # fmt: skip
    """Load a vlkd model directory for one of `tasks` and bind it to `regions`, converted for `precision`
    (`models.precision.to_precision`; run it inside `precision_context`).

    Raises:
        InputError: Not a model directory of a wanted task, a newer schema, or features it cannot read.
    """
    path = Path(path)
    config, weights, _ = load_model_dir(path, "model")
    if config.get("task") not in tasks:
        raise InputError(f"a {config.get('task')} model; this command needs a {' or '.join(tasks)} model", path)
    side = check_model_regions(config, regions, path)
    model = model_from_config(config)
    model.load_state_dict(weights)
    model = to_precision(model.to(device).eval(), precision, device)
    tokenizer = load_tokenizer(path)
    answers = config.get("answers")
    collator = VLCollator(regions, tokenizer, features=side, batch_kwargs=model.batch_kwargs(),
                          use_tags=bool(config.get("use_tags", True)),
                          num_answers=len(answers) if answers else None)  # fmt: skip
    return InferenceModel(model, tokenizer, config, collator, device, input_record(path, "model"))

