"""`vlkd demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._options import DeviceOpt, SeedOpt

EPILOG = (
    "Example: vlkd demo --quick --out demo-quick   (about 21 minutes on a 2-core CPU; without --quick the full demo "
    "adds VQA, a teacher detector and longer training). Re-running continues where an interrupted demo stopped."
)


@command_errors
def demo_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (kept: re-running skips finished steps).", file_okay=False)] = Path("demo-run"),
    quick: Annotated[bool, typer.Option(help="The quick demo: caption ablation, DCD retrieval and latency, 3 seeds, 100 test images.")] = False,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
) -> None:  # fmt: skip
    """Run the whole pipeline on generated data and print the ablation tables (writes DIR/summary.json)."""
    from vlkd_cli.stages.demo import DemoConfig, print_tables, run

    vlkd = ctx.find_root().command  # each step runs as `vlkd ARGS` through this very app
    summary = run(DemoConfig(out=out, quick=quick, seed=seed, device=device),
                  say=lambda text: typer.echo(text, err=True),
                  command=lambda args: vlkd.main(args=args, prog_name="vlkd"))  # fmt: skip
    print_tables(summary)
    typer.echo(f"wrote {out}/summary.json")
