"""AdamW with no decay on norms and biases, and the learning-rate schedule as a plain function of the step.

The schedule is stateless (lr = peak * factor(step)), so resuming needs only the step number.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vlkd_cli.errors import UsageError

SCHEDULES = ("linear", "cosine", "constant")


def param_groups(modules: list[nn.Module], weight_decay: float) -> list[dict]:
    """Two groups: weights of Linear/Conv/Embedding decay; biases, norms and 1-d parameters do not."""
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for name, param in module.named_parameters():
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            is_norm_or_bias = param.ndim <= 1 or name.endswith(".bias") or "norm" in name.lower()
            (no_decay if is_norm_or_bias else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def create_optimizer(modules: list[nn.Module], *, lr: float, weight_decay: float = 0.01,
                     betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> torch.optim.AdamW:  # fmt: skip
    """AdamW over the trainable parameters of `modules` (each parameter once)."""
    return torch.optim.AdamW(param_groups(modules, weight_decay), lr=lr, betas=betas, eps=eps)


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str = "linear") -> float:
    """Linear warm-up over `warmup_steps`, then linear or cosine decay to 0 at `total_steps` (or constant)."""
    if schedule not in SCHEDULES:
        raise UsageError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
