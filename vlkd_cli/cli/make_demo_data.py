"""`vlkd make-demo-data`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._options import OutDir, SeedOpt
from vlkd_cli.data.demo_layouts import LAYOUTS

EPILOG = ("Example: vlkd make-demo-data --out demo --num-images 1000 --image-size 128 --seed 0   (--layout coco2014: "
          "coco/train2014/, coco/val2014/, dataset_coco.json and the VQA v2 files, as the README's walk-through reads "
          "them)")  # fmt: skip
LAYOUT_HELP = ("flat (one images/ folder), or coco2014 / flickr30k: the public data sets' files and folders, to try "
               "the real-data path.")  # fmt: skip


def _check_layout(value: str) -> str:
    if value not in LAYOUTS:
        raise typer.BadParameter(f"must be one of {', '.join(LAYOUTS)}, got {value!r}")
    return value


@command_errors
def make_demo_data_cmd(
    out: OutDir,
    num_images: Annotated[int, typer.Option(help="Number of images (scenes).")] = 200,
    image_size: Annotated[int, typer.Option(help="Side of the square images in pixels.")] = 128,
    test_images: Annotated[int | None, typer.Option(help="Images of the Karpathy test split (default: 10 %).")] = None,
    layout: Annotated[str, typer.Option(help=LAYOUT_HELP, callback=_check_layout)] = "flat",
    seed: SeedOpt = 0,
) -> None:
    """Generate multi-object scenes with COCO captions + instances, VQA v2 and a Karpathy split."""
    from vlkd_cli.stages.make_demo_data import run

    report = run(out, num_images=num_images, image_size=image_size, seed=seed, layout=layout, test_images=test_images)
    typer.echo(json.dumps(report, indent=2))
