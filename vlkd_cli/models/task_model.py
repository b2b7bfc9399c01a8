"""`TaskModel`: what every task model (cross-encoder or dual encoder) offers the training loop and the CLI.

Contract:

- `config`: a JSON-able dict; `vlkd_cli.models.model_from_config(config)` + `load_state_dict` rebuilds the model.
- `batch_kwargs()`: the `build_batch` keyword arguments (layout + mask type) the model was built for.
- `prepare(batch, targets, generator=...)`: the random parts of an objective (MLM masking, ITM negatives), done
  once so a teacher and a student can be fed the very same inputs; identity for deterministic tasks.
- `forward_loss(batch, targets, return_outputs=False, ...)`: {"loss": total, "<name>_loss": part, ...}, plus the
  outputs (hidden states, attention maps, task logits) when `return_outputs`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vlkd_cli.structures.vl_batch import VLBatch

Targets = dict[str, Tensor]


class TaskModel(nn.Module):
    """Base class holding the config and the layout checks; subclasses implement `forward_loss`.

    Args:
        config: The model's JSON-able config (see `factory.py`).
    """

    mask_type: str = "full"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config

    @property
    def layout(self) -> dict[str, int]:
        """{"max_text_len", "max_tag_len", "max_regions"} of the shared sequence layout."""
        return dict(self.config["layout"])

    @property
    def special_token_ids(self) -> dict[str, int]:
        return dict(self.config["special_token_ids"])

    def batch_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `build_batch` for this model."""
        return {**self.layout, "mask_type": self.mask_type}

    def check_batch(self, batch: VLBatch) -> None:
        """Refuse a batch built for another layout or mask (token i must mean the same in teacher and student)."""
        layout = self.layout
        expected = (layout["max_text_len"], layout["max_text_len"] + layout["max_tag_len"], layout["max_regions"])
        found = (batch.max_text_len, batch.num_text_tokens, batch.region_features.shape[1])
        if found != expected:
            raise ValueError(f"batch layout (max_text_len, T, R) = {found}, the model expects {expected}")
        if batch.mask_type != self.mask_type:
            raise ValueError(f"batch has a {batch.mask_type!r} mask, the model expects {self.mask_type!r}")

    def prepare(
        self, batch: VLBatch, targets: Targets, *, generator: torch.Generator | None = None
    ) -> tuple[VLBatch, Targets]:
        """Apply the objective's random input changes (none by default)."""
        return batch, targets
