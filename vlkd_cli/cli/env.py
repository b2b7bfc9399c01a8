"""`vlkd env`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vlkd_cli.cli._app import command_errors

EPILOG = "Example: vlkd env        (paste its output into a bug report; --json for a machine-readable copy)"


@command_errors
def env_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of key: value lines.")] = False,
) -> None:
    """Versions of Python, vlkd, torch/CUDA, timm, transformers, faiss, Java; threads and devices (for bug reports)."""
    from vlkd_cli.stages.env import run

    report = run()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        typer.echo(f"{key}: {value if value is not None else '-'}")
