"""Distillation losses: DistillVLM's attention MSE, token-wise NCE with a teacher-key queue and logit KD; DCD.

Each loss is a function (the equation) and a module (its state and options) that the task modules of
`vlkd_cli.tasks` build their terms from; the term names and default weights are `vlkd_cli.tasks.terms`. The task
loss is each model's own `forward_loss`. Each module's docstring gives the paper, the equation and shapes.
"""

from __future__ import annotations

from .attention_mse import AttentionMSELoss, attention_mse
from .dcd import DCDLoss, dcd_loss, dcd_weights
from .layer_map import hidden_state_index, map_hidden_layers, map_layers, parse_layer_spec
from .logit_kd import LogitKDLoss, binary_logit_kd, logit_kd
from .queue import FeatureQueue
from .token_nce import TokenNCELoss, token_nce

__all__ = [
    "AttentionMSELoss",
    "DCDLoss",
    "FeatureQueue",
    "LogitKDLoss",
    "TokenNCELoss",
    "attention_mse",
    "binary_logit_kd",
    "dcd_loss",
    "dcd_weights",
    "hidden_state_index",
    "logit_kd",
    "map_hidden_layers",
    "map_layers",
    "parse_layer_spec",
    "token_nce",
]
