"""What a training command reads as its task data (annotations, splits, validation, the VQA answer vocabulary), and
the defaults of those options: the one place they are defined. Importable without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TASKS = ("caption", "vqa", "retrieval", "pretrain")


@dataclass(frozen=True)
class DataConfig:
    task: str
    annotations: Path
    questions: Path | None = None
    split: str | None = None
    split_file: Path | None = None
    val_split: str | None = None
    val_annotations: Path | None = None
    val_questions: Path | None = None
    min_answer_count: int = 9
    answer_vocab: Path | None = None
