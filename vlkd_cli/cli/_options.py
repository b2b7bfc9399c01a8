"""Option types shared by every command, defined once so `--device` means the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

OutFile = Annotated[Path, typer.Option("--out", "-o", help="Output file (written atomically).", dir_okay=False)]
OutDir = Annotated[Path, typer.Option("--out", "-o", help="Output directory (written atomically).", file_okay=False)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
ExistingDir = Annotated[Path, typer.Option(exists=True, file_okay=False, dir_okay=True, readable=True)]
ExistingFile = Annotated[Path, typer.Option(exists=True, file_okay=True, dir_okay=False, readable=True)]
REGIONS_HELP = ("A regions artifact (or the name of its shard set); repeat to read several as one set of images, e.g. "
                "--regions regions-train.safetensors --regions regions-val.safetensors.")  # fmt: skip
RegionsOpt = Annotated[list[Path], typer.Option("--regions", help=REGIONS_HELP)]


def regions_value(paths: list[Path] | None) -> Path | tuple[Path, ...] | None:
    """The config value of repeated `--regions`: the one path, or a tuple of several (read as one set)."""
    if not paths:
        return None
    return paths[0] if len(paths) == 1 else tuple(paths)
