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
