"""`vlkd distill`: `--method distillvlm` runs `stages.distill`, `--method dcd` runs `stages.dcd`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from vlkd_cli.cli import _training as T
from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._config_file import recorded_options
from vlkd_cli.cli._options import DeviceOpt, OutDir, check_regions, check_task, regions_value
from vlkd_cli.options import config_from_options
from vlkd_cli.stages.training_configs import DistillConfig as K
from vlkd_cli.stages.training_configs import describe_defaults

EPILOG = (
    "Example: vlkd distill --teacher teacher-adapted --student demo-student --regions regions.safetensors "
    "--task caption --annotations demo/karpathy.json --split train --loss task=1 --loss attention_mse=10 "
    "--loss token_nce=0.5 --loss logit_kd=1 --epochs 5 --out student-kd   "
    "(DCD: --task retrieval --method dcd --teacher itm-teacher --student dual-stage1 --arch dual --loss dcd=1 --loss task=1 --dcd-pool 16 --dcd-k 8)"
)
LOSS_HELP = (f"NAME=WEIGHT, repeatable; once one is given the others are 0. Defaults: distillvlm "
             f"{describe_defaults('distillvlm')}; dcd {describe_defaults('dcd')}.")  # fmt: skip


@command_errors
@T.training_options()
def distill_cmd(
    teacher: Annotated[Path, typer.Option(help="The (adapted) teacher model dir.", exists=True, file_okay=False)],
    student: Annotated[str, typer.Option(help="A preset (takes the teacher's tokenizer), or a model dir or HF hub id sharing the teacher's tokenizer.")],
    regions: Annotated[list[Path], typer.Option(help="The student's regions (student and teacher features on the same boxes); repeat for several (e.g. train and val).", callback=check_regions)],
    task: Annotated[str, typer.Option(help="caption, vqa or pretrain (distillvlm); retrieval (dcd).", callback=check_task)],
    annotations: T.Annotations,
    out: OutDir,
    method: Annotated[str, typer.Option(help="distillvlm (caption, vqa, pretrain) or dcd (retrieval).")] = K.method,
    init_from_teacher: Annotated[str | None, typer.Option(help=T.INIT_FROM_TEACHER_HELP + " The --student preset must have the teacher's width (e.g. demo-distil for demo-teacher, distil-base for oscar-base).")] = K.init_from_teacher,
    loss: Annotated[list[str] | None, typer.Option(help=LOSS_HELP)] = None,
    arch: Annotated[str | None, typer.Option(help="The student's architecture: cross, or dual (two towers; --method dcd). Default: cross for a preset, a model directory's own.")] = K.arch,
    dcd_pool: Annotated[int, typer.Option(help="DCD: captions per image scored by the teacher (the positive + captions of other images).")] = K.dcd_pool,
    dcd_k: Annotated[int, typer.Option(help="DCD: candidates the student learns from (the positive + the teacher's hardest negatives).")] = K.dcd_k,
    dcd_alpha: Annotated[float, typer.Option(help="DCD: α, the share of the KD term (released: 0.2).")] = K.dcd_alpha,
    dcd_temperature: Annotated[float, typer.Option(help="DCD: temperature T (released: 1).")] = K.dcd_temperature,
    dcd_released: Annotated[bool, typer.Option(help="DCD: reproduce the released code (teacher's sorted top-K columns, scalar-MSE KD) for comparison.")] = K.dcd_released,
    student_features: Annotated[str, typer.Option(help="DCD: the features the student reads: student, or teacher (the released setting: teacher and student see the same image features; DCD compresses the transformer).")] = K.student_features,
    dcd_pool_source: Annotated[str, typer.Option(help="DCD: where the pool's captions come from: random (released), student (the dual student's own top candidates, re-ranked as it learns) or a dual-encoder model dir (its top candidates, fixed).")] = K.dcd_pool_source,
    dcd_pool_regions: Annotated[list[Path] | None, typer.Option(help="DCD with --dcd-pool-source DIR: the regions that retriever reads (its own boxes and features); default: --regions. Repeat for several.", callback=check_regions)] = None,
    dcd_pool_refresh: Annotated[int, typer.Option(help="DCD with --dcd-pool-source student: steps between re-rankings.")] = K.dcd_pool_refresh,
    layers: Annotated[str, typer.Option(help="Distilled student layers: all, last or i,j,... (uniform map onto the teacher's).")] = K.layers,
    temperature: Annotated[float, typer.Option(help="Logit KD temperature.")] = K.temperature,
    nce_temperature: Annotated[float, typer.Option(help="Token NCE temperature τ.")] = K.nce_temperature,
    queue_size: Annotated[int, typer.Option(help="Teacher keys in the NCE queue.")] = K.queue_size,
    nce_max_tokens: Annotated[int, typer.Option(help="Tokens per step in the NCE loss (random subset).")] = K.nce_max_tokens,
    teacher_regions: Annotated[Path | None, typer.Option(help="Ablation: the teacher reads its OWN regions (needs --allow-misaligned).")] = None,
    allow_misaligned: Annotated[bool, typer.Option(help="Confirm the no-adaptation ablation (tokens matched by position).")] = K.allow_misaligned,
    use_tags: T.UseTags = K.use_tags,
    device: DeviceOpt = K.device, **shared: Any,
) -> None:  # fmt: skip
    """Distill a student: DistillVLM (adapted teacher; attention MSE + token NCE + logit KD) or DCD (retrieval)."""
    values = dict(locals())  # first: the options only
    values.update(values.pop("shared"))
    recorded = recorded_options(values)
    from vlkd_cli.stages.training_configs import parse_loss_weights

    losses = parse_loss_weights(values.pop("loss"), method)
    cfg = config_from_options(K, {**values, "losses": losses, "regions": regions_value(values["regions"]),
                                  "dcd_pool_regions": regions_value(values["dcd_pool_regions"]),
                                  "options": recorded}, ignore=["config"])  # fmt: skip
    if method == "dcd":
        from vlkd_cli.stages.dcd import dual_from_scratch_warning, run

        warning = dual_from_scratch_warning(cfg.arch, cfg.student, cfg.losses)
        if warning:
            typer.echo(f"warning: {warning}", err=True)
    else:
        from vlkd_cli.stages.distill import run
    typer.echo(json.dumps(run(cfg), indent=2))
