"""The options every training command shares (finetune, adapt-teacher, distill), and their defaults: this dataclass
is the one place they are defined; the CLI shows them in `--help`. Importable without torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Flags shared by every training command."""

    epochs: int = 1
    max_steps: int | None = None  # wins over epochs
    batch_size: int = 32  # global: split over torchrun processes
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of the steps
    schedule: str = "linear"
    clip_norm: float = 1.0
    bf16: bool = False
    save_every: int = 0  # 0: only the final model
    eval_every: int = 0  # 0: no validation
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = False
    overwrite: bool = False
    seed: int = 0
