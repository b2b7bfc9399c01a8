"""Running vlkd commands from the bench scripts (run as `python bench/<script>.py`, so this folder is on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def vlkd_once(out: Path, *command: object, quiet: bool = True) -> Path:
    """Run one vlkd command in a fresh process unless `out` already holds its result (a model directory's
    weights, an evaluation's metrics, or the file itself); return `out`. A failure raises with its output."""
    done = out / "model.safetensors" if out.suffix == "" else out
    if not (done.is_file() or (out / "metrics.json").is_file()):
        subprocess.run([sys.executable, "-m", "vlkd_cli", *map(str, command)], check=True, capture_output=quiet,
                       env={**os.environ, "VLKD_PROGRESS": "0", "HF_HUB_OFFLINE": "1"})  # fmt: skip
    return out
