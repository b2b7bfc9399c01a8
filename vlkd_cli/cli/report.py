"""`vlkd report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._options import OutDir

EPILOG = ("Example: vlkd report demo-quick --out demo-quick/report   (training curves, the ablation with seed spread "
          "and latency per stage; open report/index.html)")  # fmt: skip


@command_errors
def report_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run directories: a demo's, training outputs, latency outputs.",
                                               exists=True, file_okay=False)],
    out: OutDir,
    title: Annotated[str, typer.Option(help="The page's title.")] = "vlkd report",
) -> None:  # fmt: skip
    """Draw finished runs: training curves, ablation bars with seed spread, latency per stage (PNG + index.html)."""
    from vlkd_cli.stages.report import ReportConfig, run

    summary = run(ReportConfig(runs=tuple(runs), out=out, title=title))
    typer.echo(f"wrote {summary['figures']} figures and {out}/index.html")
