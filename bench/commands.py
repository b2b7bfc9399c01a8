"""Running vlkd commands from the bench scripts (run as `python bench/<script>.py`, so this folder is on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def vlkd_argv(*command: object) -> list[str]:
    """The command line of `vlkd COMMAND...` run by this interpreter."""
    return [sys.executable, "-m", "vlkd_cli", *map(str, command)]


def vlkd_env(**extra: str) -> dict[str, str]:
    """The environment of a vlkd run from a bench script: no progress bars, and PYTHONSAFEPATH so that `-m vlkd_cli`
    imports the installed vlkd, not a vlkd_cli folder that happens to lie in the working directory (a clone the
    demo ran in)."""
    return {**os.environ, "VLKD_PROGRESS": "0", "PYTHONSAFEPATH": "1", **extra}


def vlkd_once(out: Path, *command: object, quiet: bool = True) -> Path:
    """Run one vlkd command in a fresh process unless `out` already holds its result (a model directory's
    weights, an evaluation's metrics, or the file itself); return `out`. A failure raises with its output."""
    done = out / "model.safetensors" if out.suffix == "" else out
    if not (done.is_file() or (out / "metrics.json").is_file()):
        subprocess.run(vlkd_argv(*command), check=True, capture_output=quiet, env=vlkd_env(HF_HUB_OFFLINE="1"))
    return out
