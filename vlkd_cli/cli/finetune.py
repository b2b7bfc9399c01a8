"""`vlkd finetune` and `vlkd adapt-teacher`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from vlkd_cli.cli import _training as T
from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._config_file import recorded_options
from vlkd_cli.cli._options import DeviceOpt, OutDir, RegionsOpt, TaskOpt, check_regions, regions_value
from vlkd_cli.options import config_from_options
from vlkd_cli.stages.training_configs import ADAPT_TEACHER_LR
from vlkd_cli.stages.training_configs import FinetuneConfig as F

EPILOG = (
    "Example: vlkd finetune --task caption --model demo-teacher --regions regions.safetensors --features teacher "
    "--annotations demo/karpathy.json --split train --val-split val --eval-every 200 --epochs 10 --out teacher"
)
ADAPT_EPILOG = (
    "Example: vlkd adapt-teacher --teacher teacher --regions student-regions.safetensors --task caption "
    "--annotations demo/karpathy.json --split train --epochs 3 --out teacher-adapted"
)



@command_errors
@T.training_options()
def finetune_cmd(
    task: TaskOpt,
    model: Annotated[str, typer.Option(help="A preset (tiny, demo-teacher, demo-student, demo-distil, oscar-base, minivlm, minilm-l6, distil-base), an HF BERT-family dir or hub id (sentence-transformers/all-MiniLM-L6-v2 is installed), or a vlkd model dir.")],
    regions: RegionsOpt,
    annotations: T.Annotations,
    out: OutDir,
    features: Annotated[str, typer.Option(help="Which region features the model reads: student or teacher.")] = F.features,
    arch: Annotated[str, typer.Option(help="cross (single-stream) or dual (two towers; retrieval only).")] = F.arch,
    init_from_teacher: Annotated[str | None, typer.Option(help=T.INIT_FROM_TEACHER_HELP + " --model is then the teacher (a vlkd model dir); the new model has its width and these layers (uniform: half its depth).")] = F.init_from_teacher,
    itm_miner: Annotated[Path | None, typer.Option(help="Retrieval cross-encoder with --itm-negatives K: a dual-encoder model dir whose in-batch similarities draw the K negatives (ALBEF's hard negatives; softmax-weighted, other images only).", exists=True, file_okay=False)] = F.itm_miner,
    itm_miner_regions: Annotated[list[Path] | None, typer.Option(help="The regions the --itm-miner reads (its own boxes and features, e.g. the student's); default: --regions. Repeat for several.", callback=check_regions)] = None,
    itm_negatives: Annotated[int, typer.Option(help="Retrieval cross-encoder: 0 = Oscar's binary ITM; K = rank each image's caption against K captions of other images (ViLT/METER irtr, softmax).")] = F.itm_negatives,
    max_text_len: T.MaxTextLen = F.max_text_len, max_tag_len: T.MaxTagLen = F.max_tag_len,
    max_regions: T.MaxRegions = F.max_regions, use_tags: T.UseTags = F.use_tags,
    device: DeviceOpt = F.device, **shared: Any,
) -> None:  # fmt: skip
    """Train a VL model (caption / VQA / retrieval / pre-training) on a regions artifact."""
    options = dict(locals())
    options.update(options.pop("shared"))
    _run(options, recorded_options(options), adapt=False)


@command_errors
@T.training_options(lr=ADAPT_TEACHER_LR)
def adapt_teacher_cmd(
    teacher: Annotated[Path, typer.Option(help="The teacher model dir (vlkd finetune on its own regions).", exists=True, file_okay=False)],
    regions: Annotated[list[Path], typer.Option(help="The STUDENT's regions (teacher features are read on its boxes); repeat for several (e.g. train and val).", callback=check_regions)],
    task: TaskOpt,
    annotations: T.Annotations,
    out: OutDir,
    use_tags: T.UseTags = F.use_tags,
    device: DeviceOpt = F.device, **shared: Any,
) -> None:  # fmt: skip
    """Retrain a teacher on the student's region proposals with teacher features (DistillVLM's adaptation)."""
    options = dict(locals())
    options.update(options.pop("shared"))
    recorded = recorded_options(options)
    options.update(model=str(options.pop("teacher")), features="teacher")
    _run(options, recorded, adapt=True)  # the arch is the teacher's


def _run(values: dict[str, Any], recorded: dict[str, Any], *, adapt: bool) -> None:
    from vlkd_cli.stages.finetune import run

    miner_regions = regions_value(values.get("itm_miner_regions"))
    cfg = config_from_options(F, {**values, "regions": regions_value(values["regions"]), "adapt": adapt,
                                  "itm_miner_regions": miner_regions,
                                  "options": recorded}, ignore=["config"])  # fmt: skip
    summary = run(cfg, command="adapt-teacher" if adapt else "finetune")
    typer.echo(json.dumps(summary, indent=2))
