"""The configs of the training commands (`finetune`, `adapt-teacher`, `distill`) and the one place of their
defaults: the CLI shows these values in `--help`. Importable without torch, so `--help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlkd_cli.data.task_config import DataConfig
from vlkd_cli.tasks.terms import default_weights, describe_defaults, parse_loss_weights
from vlkd_cli.train.config import TrainConfig

__all__ = ["ADAPT_TEACHER_LR", "DistillConfig", "FinetuneConfig", "TrainingCommandConfig", "describe_defaults",
           "parse_loss_weights"]

ADAPT_TEACHER_LR = 5e-5  # adapt-teacher retrains an already trained teacher: a gentler peak lr than TrainConfig.lr


@dataclass(frozen=True, kw_only=True)
class TrainingCommandConfig:
    """What every training command reads: the task, the regions, the data, the loop's options, the output."""

    task: str
    regions: Path | tuple[Path, ...]  # one regions set, or several read as one (e.g. train and val)
    out: Path
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    arch: str = "cross"  # cross or dual (retrieval); a distillation's preset student's
    use_tags: bool = True
    eval_batch_size: int = 64
    device: str = "auto"
    options: dict[str, Any] | None = None  # the command's options as given: config.json records them (--config)


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(TrainingCommandConfig):
    model: str
    features: str = "student"
    max_text_len: int = 40
    max_tag_len: int = 20
    max_regions: int = 50
    label_smoothing: float = 0.0
    itm_negatives: int = 0
    itm_miner: Path | None = None  # a dual encoder whose similarities draw the ranking negatives (ALBEF)
    itm_miner_regions: Path | tuple[Path, ...] | None = None  # the miner's own regions (default: the model's)
    vocab_size: int = 4096
    init_from_teacher: str | None = None  # layers of --model (a vlkd model dir) the new, shallower model starts from
    adapt: bool = False  # adapt-teacher: record adapted_to_boxes_sha256


@dataclass(frozen=True, kw_only=True)
class DistillConfig(TrainingCommandConfig):
    teacher: Path
    student: str
    arch: str | None = None  # cross or dual; None: cross for a preset student, a model directory's own arch
    init_from_teacher: str | None = None  # teacher layers the (preset, teacher-width) student starts from
    student_features: str = "student"  # dcd: teacher = the released setting (both read the same image features)
    method: str = "distillvlm"
    losses: dict[str, float] = field(default_factory=lambda: default_weights("distillvlm"))
    layers: str = "all"
    temperature: float = 2.0
    nce_temperature: float = 0.07
    queue_size: int = 4096
    nce_max_tokens: int = 256
    teacher_regions: Path | None = None
    allow_misaligned: bool = False
    dcd_pool: int = 16
    dcd_k: int = 8
    dcd_alpha: float = 0.2
    dcd_temperature: float = 1.0
    dcd_released: bool = False
    dcd_pool_source: str = "random"  # random (released), student (a dual student re-ranking), or a dual model dir
    dcd_pool_regions: Path | tuple[Path, ...] | None = None  # the fixed retriever's own regions (default: regions)
    dcd_pool_refresh: int = 50  # steps between the student's re-rankings (--dcd-pool-source student)
