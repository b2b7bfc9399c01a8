"""`vlkd extract-regions`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._config_file import ConfigOpt
from vlkd_cli.cli._options import DeviceOpt, OutFile, SeedOpt
from vlkd_cli.options import config_from_options

EPILOG = (
    "Example: vlkd extract-regions --images demo/images --annotations demo/instances.json --detector detector "
    "--teacher-backbone tf_efficientnet_lite2 --out regions.safetensors   "
    "(any detector's COCO results file works instead of --detector: --proposals results.json --student-backbone NAME)"
)


@command_errors
def extract_regions_cmd(
    images: Annotated[Path, typer.Option(help="Images root.", exists=True, file_okay=False)],
    out: OutFile,
    teacher_backbone: Annotated[str, typer.Option(help="timm name of the teacher backbone.")],
    student_backbone: Annotated[str | None, typer.Option(help="timm name of the student backbone (default: the detector's).")] = None,
    annotations: Annotated[Path | None, typer.Option(help="COCO / Karpathy / VQA questions JSON: image ids and files.", exists=True, dir_okay=False)] = None,
    split: Annotated[str | None, typer.Option(help="Karpathy split (train = train + restval).")] = None,
    detector: Annotated[Path | None, typer.Option(help="A detector directory from `vlkd train-detector`.", exists=True, file_okay=False)] = None,
    proposals: Annotated[Path | None, typer.Option(help="Any detector's COCO results JSON instead of --detector.", exists=True, dir_okay=False)] = None,
    student_backbone_weights: Annotated[Path | None, typer.Option(help="Student backbone weights (.safetensors or state dict).", exists=True, dir_okay=False)] = None,
    teacher_backbone_weights: Annotated[Path | None, typer.Option(help="Teacher backbone weights (.safetensors or state dict).", exists=True, dir_okay=False)] = None,
    pretrained: Annotated[bool, typer.Option(help="Real ImageNet weights from the `pretrained` extra for both backbones.")] = False,
    image_size: Annotated[int | None, typer.Option(help="Longest image side fed to the backbones (default: the detector's, else 448).")] = None,
    max_regions: Annotated[int, typer.Option(help="Regions kept per image (top scores after NMS).")] = 50,
    score_threshold: Annotated[float, typer.Option(help="Minimum proposal score.")] = 0.2,
    nms_iou: Annotated[float, typer.Option(help="IoU threshold of the class-aware NMS.")] = 0.5,
    roi_size: Annotated[int, typer.Option(help="RoIAlign grid side before pooling.")] = 4,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 8,
    feature_dtype: Annotated[str, typer.Option(help="float16 (half the disk) or float32.")] = "float16",
    shard: Annotated[str | None, typer.Option(help="K/N: write shard K (0-based) of N beside --out.")] = None,
    skip_bad_images: Annotated[bool, typer.Option(help="Skip and count unreadable images instead of failing.")] = False,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
) -> None:
    """Detect student regions and pool student and teacher RoI features on the same boxes."""
    options = dict(locals())
    from vlkd_cli.stages.extract_regions import ExtractConfig, run

    cfg = config_from_options(ExtractConfig, options, ignore=["config"])
    result = run(cfg)
    typer.echo(
        f"wrote {result.path}: {result.num_images} images, {result.num_regions} regions "
        f"({result.empty_images} images without regions), boxes_sha256 {result.boxes_sha256[:16]}"
    )
    for path, reason in result.skipped_images:
        typer.echo(f"skipped {path}: {reason}", err=True)
    if result.skipped_images:
        typer.echo(f"skipped {len(result.skipped_images)} unreadable images", err=True)
