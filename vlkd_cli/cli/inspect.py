"""`vlkd inspect FILE_OR_DIR`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vlkd_cli.cli._app import command_errors

EPILOG = "Example: vlkd inspect regions.safetensors    (or a model dir, or --json for machine-readable output)"


@command_errors
def inspect_cmd(
    path: Annotated[Path, typer.Argument(help="A .safetensors artifact, a shard set's name, or an artifact directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
) -> None:
    """Print kind, version, lineage and tensor shapes of an artifact without loading tensors."""
    from vlkd_cli.stages.inspect import describe

    descriptions = describe(path)
    if as_json:
        typer.echo(json.dumps(descriptions, indent=2))
        return
    for description in descriptions:
        _print(description)


def _print(d: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False, soft_wrap=True, highlight=False)
    console.print(f"{d['path']}  ({d['bytes']:,} bytes)", style="bold")
    console.print(f"  kind {d['kind']}  schema {d['schema_version']}  vlkd {d['vlkd_version']}  "
                  f"command {d['command']}  created {d['created']}")  # fmt: skip
    directory = d.get("directory_config") or {}
    summary = {k: directory[k] for k in ("vlkd_kind", "task", "arch", "features", "feature_backbone",
                                         "adapted_to_boxes_sha256", "training") if k in directory}  # fmt: skip
    if summary:
        console.print(f"  config.json: {json.dumps(summary)}")
    for record in d["inputs"]:
        console.print(f"  input [{record.get('kind')}] {record.get('path')}  sha256 {str(record.get('sha256'))[:16]}…")
    for key, value in sorted(d["metadata"].items()):
        text = value if isinstance(value, str) else json.dumps(value)
        console.print(f"  {key} = {text if len(text) <= 100 else text[:97] + '...'}")
    table = Table("tensor", "dtype", "shape", box=None, pad_edge=False)
    for tensor in d["tensors"]:
        table.add_row(tensor["name"], tensor["dtype"], str(tuple(tensor["shape"])))
    console.print(table)
