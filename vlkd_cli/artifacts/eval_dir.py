"""The evaluation directory that `eval-caption`, `eval-vqa` and `eval-retrieval` write.

`DIR/metrics.json` (the metrics, official key names), `DIR/predictions.json` (the model's outputs in the official
results format) and `DIR/scores.safetensors` (kind `eval`: per-item scores with their ids). The directory is
written whole or not at all: it is filled aside and swapped in, so a failed run leaves an old one intact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlkd_cli.artifacts.atomic import atomic_dir
from vlkd_cli.artifacts.io import build_metadata, save_artifact
from vlkd_cli.errors import UsageError

METRICS_NAME = "metrics.json"
PREDICTIONS_NAME = "predictions.json"
SCORES_NAME = "scores.safetensors"
EVAL_FILES = frozenset({METRICS_NAME, PREDICTIONS_NAME, SCORES_NAME})


@dataclass
class EvalOutput:
    """What one evaluation writes; `metrics` None = no ground truth (a results file for a test server)."""

    predictions: Any
    metrics: dict[str, Any] | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, str]] = field(default_factory=list)


def check_out_dir(out: Path) -> None:
    """Refuse (exit 2) an --out that is a file, or a directory holding anything but an earlier evaluation: the
    directory is replaced whole, and that must never delete a user's other files."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError("--out must be a directory (it exists as a file)", out)
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in EVAL_FILES)
        if foreign:
            raise UsageError(
                f"--out holds files that are not an evaluation's ({', '.join(foreign[:3])}): choose a new directory",
                out,
            )


def write_eval_dir(out: Path, result: EvalOutput, *, command: str) -> None:
    """Write metrics.json, predictions.json and scores.safetensors into `out`, atomically as a whole."""
    check_out_dir(out)
    with atomic_dir(Path(out)) as tmp:
        (tmp / PREDICTIONS_NAME).write_text(json.dumps(result.predictions, ensure_ascii=False) + "\n")
        if result.metrics is not None:
            (tmp / METRICS_NAME).write_text(json.dumps(result.metrics, indent=2) + "\n")
        if result.scores:
            metadata = build_metadata("eval", command=command, config=result.config, inputs=result.inputs)
            save_artifact(tmp / SCORES_NAME, result.scores, metadata)

