"""`vlkd export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._options import OutDir

EPILOG = (
    "Example: vlkd export --model student --to hf --out student-hf   "
    "(then transformers.AutoModel.from_pretrained('student-hf'); the README inside shows how to run the heads; "
    "--to torchscript|onnx traces the inference graph; --checkpoint best|latest|step-N exports a checkpoint)"
)


@command_errors
def export_cmd(
    model: Annotated[Path, typer.Option(help="A vlkd model directory (finetune / distill output).")],
    out: OutDir,
    to: Annotated[str, typer.Option(help="hf (Hugging Face dir), torchscript or onnx (inference graph).")] = "hf",
    checkpoint: Annotated[
        str | None, typer.Option(help="Export a training checkpoint instead: best, latest, step-N or a path.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size the graph is traced at (torchscript / onnx).")] = 1,
) -> None:
    """Export a student: a Hugging Face directory (AutoModel + heads + README) or a TorchScript / ONNX graph."""
    from vlkd_cli.stages.export import ExportConfig, run

    result = run(ExportConfig(model=model, to=to, out=out, checkpoint=checkpoint, batch_size=batch_size))
    typer.echo(f"wrote {result.out} ({result.to}): {result.task} ({result.arch}); files: {', '.join(result.files)}")
    for name, diff in result.checks.items():
        typer.echo(f"graph {name}: " + (f"max |graph - eager| = {diff:.2e}" if diff is not None else "not checked"))
    typer.echo(f"stripped {len(result.stripped)} item(s)" + (":" if result.stripped else ""))
    for item in result.stripped:
        typer.echo(f"  {item.describe()}")
