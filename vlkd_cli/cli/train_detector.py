"""`vlkd train-detector`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._config_file import ConfigOpt
from vlkd_cli.cli._options import DeviceOpt, OutDir, SeedOpt
from vlkd_cli.options import config_from_options

EPILOG = (
    "Example: vlkd train-detector --images demo/images --instances demo/instances.json "
    "--backbone tf_efficientnet_lite0 --pretrained --image-size 128 --epochs 30 --out detector"
)


@command_errors
def train_detector_cmd(
    images: Annotated[Path, typer.Option(help="Images root.", exists=True, file_okay=False)],
    instances: Annotated[Path, typer.Option(help="COCO instances JSON (boxes + categories).", exists=True, dir_okay=False)],
    backbone: Annotated[str, typer.Option(help="timm name of the detector's (student) backbone.")],
    out: OutDir,
    backbone_weights: Annotated[Path | None, typer.Option(help="Backbone weights (.safetensors or state dict).", exists=True, dir_okay=False)] = None,
    pretrained: Annotated[bool, typer.Option(help="Real ImageNet backbone weights from the `pretrained` extra.")] = False,
    val_fraction: Annotated[float, typer.Option(help="Share of images held out for box AP (COCOeval).")] = 0.1,
    image_size: Annotated[int, typer.Option(help="Longest image side in training and detection.")] = 512,
    epochs: Annotated[int, typer.Option(help="Passes over the training images.")] = 30,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps (wins over --epochs).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, warm-up + cosine).")] = 2e-3,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
) -> None:
    """Train the anchor-free student detector and report box AP on held-out images."""
    options = dict(locals())
    from vlkd_cli.stages.train_detector import TrainDetectorConfig, run

    cfg = config_from_options(TrainDetectorConfig, options, ignore=["config"])
    metrics = run(cfg)
    typer.echo(json.dumps(metrics, indent=2))
