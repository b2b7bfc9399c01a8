"""`vlkd import-regions`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._config_file import ConfigOpt
from vlkd_cli.cli._options import DeviceOpt, OutFile, SeedOpt
from vlkd_cli.options import config_from_options

EPILOG = (
    "Example: vlkd import-regions --format vinvl-tsv train.feature.tsv --labels train.label.tsv "
    "--images coco/images --annotations karpathy.json --student-backbone tf_efficientnet_lite0 "
    "--out regions.safetensors   (VinVL features as the teacher side, student features pooled on the same boxes; "
    "or the student side from a second TSV: --student-features student.feature.tsv)"
)

_TSV = {"exists": True, "dir_okay": False}


@command_errors
def import_regions_cmd(
    features: Annotated[Path, typer.Argument(help="The *.feature.tsv of --side (.lineidx beside it is used).", **_TSV)],
    out: OutFile,
    format: Annotated[str, typer.Option("--format", help="Input format: vinvl-tsv.")] = "vinvl-tsv",
    side: Annotated[str, typer.Option(help="Which features the TSV holds: teacher or student.")] = "teacher",
    labels: Annotated[
        Path | None, typer.Option(help="*.label.tsv: class/rect/conf per box (the boxes, as tags).", **_TSV)
    ] = None,
    hw: Annotated[Path | None, typer.Option(help="*.hw.tsv: image height/width per key.", **_TSV)] = None,
    student_features: Annotated[
        Path | None, typer.Option(help="Second TSV with the student features (same boxes).", **_TSV)
    ] = None,
    teacher_features: Annotated[
        Path | None, typer.Option(help="Second TSV with the teacher features (--side student).", **_TSV)
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(help="Images root, to pool the other side with a backbone.", exists=True, file_okay=False),
    ] = None,
    student_backbone: Annotated[
        str | None, typer.Option(help="timm backbone pooling the student side from --images.")
    ] = None,
    teacher_backbone: Annotated[
        str | None, typer.Option(help="timm backbone pooling the teacher side (--side student).")
    ] = None,
    student_backbone_weights: Annotated[Path | None, typer.Option(help="Student backbone weights.", **_TSV)] = None,
    teacher_backbone_weights: Annotated[Path | None, typer.Option(help="Teacher backbone weights.", **_TSV)] = None,
    pretrained: Annotated[
        bool, typer.Option(help="Real ImageNet weights from the `pretrained` extra for the backbone.")
    ] = False,
    annotations: Annotated[
        Path | None,
        typer.Option(
            help="COCO / Karpathy / VQA JSON: the images to import (and COCO categories).", exists=True, dir_okay=False
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="Karpathy split (train = train + restval).")] = None,
    image_size: Annotated[
        int | None, typer.Option(help="Longest image side fed to the backbone (default 448, as extract-regions).")
    ] = None,
    roi_size: Annotated[int, typer.Option(help="RoIAlign grid side before pooling.")] = 4,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 8,
    feature_dtype: Annotated[
        str, typer.Option(help="Stored features: float16 (half the disk) or float32.")
    ] = "float16",
    tsv_dtype: Annotated[
        str, typer.Option(help="Element type of the base64 blobs: float32 (public releases) or float16.")
    ] = "float32",
    extractor: Annotated[str, typer.Option(help="Name recorded for the TSV's feature extractor.")] = "vinvl-tsv",
    other_extractor: Annotated[str, typer.Option(help="Name recorded for the second TSV's extractor.")] = "tsv",
    box_tolerance: Annotated[
        float, typer.Option(help="Pixels label rects and geometry x size may differ (and boxes overhang).")
    ] = 1.0,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
) -> None:
    """Import VinVL/Oscar feature TSVs as a regions artifact (one side from the TSV, the other on the same boxes)."""
    options = dict(locals())
    from vlkd_cli.stages.import_regions import ImportConfig, run

    cfg = config_from_options(ImportConfig, options, ignore=["config"])
    result = run(cfg)
    sizes = ", ".join(f"{n} from {s}" for s, n in result.size_sources.items()) or "none"
    typer.echo(
        f"wrote {result.path}: {result.num_images} images, {result.num_regions} regions "
        f"({result.empty_images} images without regions), boxes from {result.box_source}, image sizes: {sizes}, "
        f"{result.categories} categories, boxes_sha256 {result.boxes_sha256[:16]}"
    )
    if result.clipped_boxes:
        typer.echo(f"clipped {result.clipped_boxes} boxes to their image (within --box-tolerance)", err=True)
    if result.unused_rows:
        typer.echo(f"{result.unused_rows} rows of {features.name} are not among the imported images", err=True)
