"""Option types shared by every command, defined once so `--device` means the same everywhere. Their checks run
as the arguments are parsed, before torch is imported: a bad value is a one-line usage error (exit 2)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from vlkd_cli.artifacts.shards import resolve_shards
from vlkd_cli.data.task_config import TASKS
from vlkd_cli.errors import UsageError

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def check_device(value: str | None) -> str | None:
    if value is not None and not DEVICE_PATTERN.fullmatch(value.strip().lower()):
        raise typer.BadParameter(f"must be auto, cpu, cuda or cuda:N, got {value!r}")
    return value


def check_task(value: str | None) -> str | None:
    if value is not None and value not in TASKS:
        raise typer.BadParameter(f"must be one of {', '.join(TASKS)}, got {value!r}")
    return value


PRECISIONS = ("fp32", "bf16", "int8")  # = vlkd_cli.models.precision.PRECISIONS (importing vlkd_cli.models loads torch)


def check_precision_option(value: str | None) -> str | None:
    if value is not None and value not in PRECISIONS:
        raise typer.BadParameter(f"must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def check_regions(values: list[Path] | None) -> list[Path] | None:
    """Each `--regions` names a file or a complete shard set (an incomplete set is exit 3, later)."""
    for path in values or []:
        try:
            resolve_shards(path)
        except UsageError as err:
            raise typer.BadParameter(str(err)) from None
        except Exception:  # noqa: BLE001 — an incomplete or mixed shard set: the stage reports it (exit 3)
            pass
    return values

OutFile = Annotated[Path, typer.Option("--out", "-o", help="Output file (written atomically).", dir_okay=False)]
OutDir = Annotated[Path, typer.Option("--out", "-o", help="Output directory (written atomically).", file_okay=False)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.", callback=check_device)]
PrecisionOpt = Annotated[
    str,
    typer.Option("--precision", help="Inference precision: fp32, bf16 (bfloat16 autocast) or int8 (dynamic "
                 "quantisation of the Linear layers; CPU only).", callback=check_precision_option),
]  # fmt: skip
TaskOpt = Annotated[str, typer.Option("--task", help="caption, vqa, retrieval or pretrain.", callback=check_task)]
ExistingDir = Annotated[Path, typer.Option(exists=True, file_okay=False, dir_okay=True, readable=True)]
ExistingFile = Annotated[Path, typer.Option(exists=True, file_okay=True, dir_okay=False, readable=True)]
REGIONS_HELP = ("A regions artifact (or the name of its shard set); repeat to read several as one set of images, e.g. "
                "--regions regions-train.safetensors --regions regions-val.safetensors.")  # fmt: skip
RegionsOpt = Annotated[list[Path], typer.Option("--regions", help=REGIONS_HELP, callback=check_regions)]
OptionalRegionsOpt = Annotated[list[Path] | None, typer.Option("--regions", help=REGIONS_HELP, callback=check_regions)]


def regions_value(paths: list[Path] | None) -> Path | tuple[Path, ...] | None:
    """The config value of repeated `--regions`: the one path, or a tuple of several (read as one set)."""
    if not paths:
        return None
    return paths[0] if len(paths) == 1 else tuple(paths)
