"""What `vlkd export` reads: a model directory (or one of its checkpoints) loaded as a task model, with every
distillation-only or training-state tensor left out and listed (`Stripped`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vlkd_cli.artifacts.header import read_header
from vlkd_cli.artifacts.io import load_tensors
from vlkd_cli.artifacts.model_dir import WEIGHTS_NAME, read_model_config
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models.factory import model_from_config
from vlkd_cli.models.task_model import TaskModel
from vlkd_cli.train.checkpoint import CHECKPOINTS, checkpoint_dirs

# Module-level state-dict prefixes of the training modules (finetune: TaskModule.model; distill/DCD: .student).
_STUDENT_PREFIXES = ("model.", "student.")
# Tensors that exist only to train: (pattern on the module-level name, reason).
_STRIP_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^nce\.projection\."), "distillation-only: token-NCE projection"),
    (re.compile(r"^nce\.queue\."), "distillation-only: token-NCE negative queue"),
    (re.compile(r"^nce\."), "distillation-only: token-NCE loss state"),
    (re.compile(r"^_?teacher\."), "distillation-only: teacher"),
    (re.compile(r"(^|\.)queue\."), "distillation-only: queue"),
    (re.compile(r"^optim\."), "training state: optimizer"),
    (re.compile(r"^rng\."), "training state: random generators"),
)


@dataclass
class Stripped:
    """One tensor (or group of tensors) left out of the export."""

    name: str
    reason: str
    source: str
    shape: list[int] | None = None

    def describe(self) -> str:
        shape = f" {tuple(self.shape)}" if self.shape is not None else ""
        return f"{self.name}{shape} [{self.source}]: {self.reason}"


@dataclass
class ExportSource:
    """A task model loaded for export, with what was left out of it."""

    model: TaskModel
    config: dict[str, Any]
    model_dir: Path
    weights_path: Path
    stripped: list[Stripped] = field(default_factory=list)



# ------------------------------------------------------------------------------------------------ loading


def classify_tensor(name: str) -> str | None:
    """The reason a module-level tensor name is stripped (distillation-only or training state), or None."""
    for pattern, reason in _STRIP_RULES:
        if pattern.search(name):
            return reason
    return None


def resolve_checkpoint(model_dir: Path, checkpoint: str) -> Path:
    """The `.safetensors` file a `--checkpoint` value names (see `ExportConfig.checkpoint`).

    Raises:
        UsageError: Nothing of that name exists.
    """
    root = Path(model_dir) / CHECKPOINTS
    if checkpoint == "best":
        path = root / "best" / WEIGHTS_NAME
    elif checkpoint == "latest":
        steps = checkpoint_dirs(model_dir)
        if not steps:
            raise UsageError("the run holds no step checkpoint (--checkpoint latest)", root)
        path = steps[-1] / "checkpoint.safetensors"
    elif checkpoint.isdigit():
        path = root / f"step-{int(checkpoint):08d}" / "checkpoint.safetensors"
    elif re.fullmatch(r"step-\d{8}", checkpoint):
        path = root / checkpoint / "checkpoint.safetensors"
    else:
        given = Path(checkpoint)
        path = given / "checkpoint.safetensors" if given.is_dir() else given
        if given.is_dir() and not path.is_file():
            path = given / WEIGHTS_NAME  # the `best` directory layout
    if not path.is_file():
        raise UsageError(f"no checkpoint {checkpoint!r}", path)
    return path


def _module_state(tensors: dict[str, Tensor], is_step_checkpoint: bool) -> dict[str, Tensor]:
    """A step checkpoint prefixes the training module's state with `model.`; `best/` holds it bare."""
    if not is_step_checkpoint:
        return tensors
    return {k.removeprefix("model."): v for k, v in tensors.items()}


def split_checkpoint(tensors: dict[str, Tensor], source: str) -> tuple[dict[str, Tensor], list[Stripped]]:
    """(student weights, stripped) of a training module's state (`model.*` / `student.*` + NCE, optimizer ...).

    Raises:
        InputError: A tensor that is neither the student's nor a known training-only part.
    """
    student, stripped, unknown = {}, [], []
    for name, value in tensors.items():
        reason = classify_tensor(name)
        if reason is not None:
            stripped.append(Stripped(name, reason, source, list(value.shape)))
        elif name.startswith(_STUDENT_PREFIXES):
            student[name.split(".", 1)[1]] = value
        else:
            unknown.append(name)
    if unknown:
        raise InputError(f"checkpoint holds tensors of no known part: {', '.join(sorted(unknown)[:8])}", source)
    return student, stripped


def _same_shape(own: Tensor, stored: Tensor) -> bool:
    """Equal shapes; a 0-d parameter may be stored as (1,) (as `load_state_dict` accepts)."""
    return tuple(own.shape) == tuple(stored.shape) or (own.ndim == 0 and tuple(stored.shape) == (1,))


def _match_weights(
    model: TaskModel, weights: dict[str, Tensor], path: Path
) -> tuple[dict[str, Tensor], list[Stripped]]:
    """The model's own tensors out of `weights`; known training-only extras are stripped, anything else refused."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    stripped, unknown = [], []
    for name in extra:
        reason = classify_tensor(name)
        if reason is None:
            unknown.append(name)
        else:
            stripped.append(Stripped(name, reason, path.name, list(weights[name].shape)))
    if missing or unknown:
        parts = [
            f"missing {', '.join(missing[:8])}" if missing else "",
            f"unexpected {', '.join(unknown[:8])}" if unknown else "",
        ]
        raise InputError(f"weights do not fit the model config: {'; '.join(p for p in parts if p)}", path)
    bad_shapes = [k for k in own if not _same_shape(own[k], weights[k])]
    if bad_shapes:
        raise InputError(f"weights of the wrong shape: {', '.join(bad_shapes[:8])}", path)
    kept = {k: weights[k] for k in own}
    for name, value in kept.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise InputError(f"tensor '{name}' holds non-finite values", path)
    return kept, stripped


def checkpoint_leftovers(model_dir: Path) -> list[Stripped]:
    """The training-only tensors of the run's checkpoints (read from headers only; nothing is loaded)."""
    root = Path(model_dir) / CHECKPOINTS
    files = [d / "checkpoint.safetensors" for d in checkpoint_dirs(model_dir)] + [root / "best" / WEIGHTS_NAME]
    stripped: list[Stripped] = []
    for path in files:
        if not path.is_file():
            continue
        source = str(path.relative_to(model_dir))
        counts: dict[str, int] = {}
        tensors = read_header(path).tensors
        for raw, info in tensors.items():
            name = raw[len("model.") :] if path.name == "checkpoint.safetensors" and raw.startswith("model.") else raw
            reason = classify_tensor(name)
            if reason is None:
                continue
            if reason.startswith("distillation-only"):
                stripped.append(Stripped(name, reason, source, list(info.shape)))
            else:
                counts[reason] = counts.get(reason, 0) + 1
        stripped += [Stripped(f"{n} tensors", reason, source) for reason, n in counts.items()]
    return stripped


def load_export_source(model_dir: Path, checkpoint: str | None = None) -> ExportSource:
    """Load a vlkd model directory (or one of its checkpoints) as an eval-mode task model.

    Raises:
        UsageError: No such directory / checkpoint.
        InputError: Not a vlkd model directory, or weights that do not fit its config.
    """
    model_dir = Path(model_dir)
    config = read_model_config(model_dir, "model")
    model = model_from_config(config)
    if checkpoint is None:
        path = model_dir / WEIGHTS_NAME
        if not path.is_file():
            raise InputError(f"{WEIGHTS_NAME} is missing", model_dir)
        weights, _ = load_tensors(path, "model")
        weights, stripped = _match_weights(model, weights, path)
        stripped += checkpoint_leftovers(model_dir)
    else:
        path = resolve_checkpoint(model_dir, checkpoint)
        tensors, _ = load_tensors(path, "checkpoint", check_finite=False)
        state = _module_state(tensors, path.name == "checkpoint.safetensors")
        where = str(path.relative_to(model_dir)) if path.is_relative_to(model_dir) else str(path)
        student, stripped = split_checkpoint(state, where)
        weights, more = _match_weights(model, student, path)
        stripped += more
    model.load_state_dict(weights, strict=True)
    model.eval()
    return ExportSource(model, config, model_dir, path, stripped)


