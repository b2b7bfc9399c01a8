"""`vlkd make-demo-data`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._options import OutDir, SeedOpt

EPILOG = "Example: vlkd make-demo-data --out demo --num-images 1000 --image-size 128 --seed 0"


@command_errors
def make_demo_data_cmd(
    out: OutDir,
    num_images: Annotated[int, typer.Option(help="Number of images (scenes).")] = 200,
    image_size: Annotated[int, typer.Option(help="Side of the square images in pixels.")] = 128,
    seed: SeedOpt = 0,
) -> None:
    """Generate multi-object scenes with COCO captions + instances, VQA v2 and a Karpathy split."""
    from vlkd_cli.stages.make_demo_data import run

    report = run(out, num_images=num_images, image_size=image_size, seed=seed)
    typer.echo(json.dumps(report, indent=2))
