"""`vlkd distill`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vlkd_cli.cli import _training as T
from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._options import DeviceOpt, OutDir, SeedOpt

EPILOG = (
    "Example: vlkd distill --teacher teacher-adapted --student demo-student --regions regions.safetensors "
    "--task caption --annotations demo/karpathy.json --split train --loss task=1 --loss attention_mse=10 "
    "--loss token_nce=0.5 --loss logit_kd=1 --epochs 5 --out student-kd   "
    "(DCD: --task retrieval --method dcd --teacher itm-teacher --student dual-stage1 --arch dual --loss dcd=1 --loss task=1 --dcd-pool 16 --dcd-k 8)"
)


@command_errors
def distill_cmd(
    teacher: Annotated[Path, typer.Option(help="The (adapted) teacher model dir.", exists=True, file_okay=False)],
    student: Annotated[str, typer.Option(help="A preset (takes the teacher's tokenizer) or a model dir sharing the teacher's tokenizer.")],
    regions: Annotated[Path, typer.Option(help="The student's regions (student and teacher features on the same boxes).")],
    task: Annotated[str, typer.Option(help="caption, vqa or pretrain (distillvlm); retrieval (dcd).")],
    annotations: T.Annotations,
    out: OutDir,
    method: Annotated[str, typer.Option(help="distillvlm (caption, vqa, pretrain) or dcd (retrieval).")] = "distillvlm",
    loss: Annotated[list[str] | None, typer.Option(help="NAME=WEIGHT, repeatable. distillvlm: task, attention_mse, token_nce, logit_kd (default task=1 attention_mse=10 token_nce=0.5 logit_kd=1); dcd: dcd, task (default dcd=1).")] = None,
    arch: Annotated[str, typer.Option(help="A preset student's architecture: cross, or dual (two towers; --method dcd).")] = "cross",
    dcd_pool: Annotated[int, typer.Option(help="DCD: captions per image scored by the teacher (the positive + captions of other images).")] = 16,
    dcd_k: Annotated[int, typer.Option(help="DCD: candidates the student learns from (the positive + the teacher's hardest negatives).")] = 8,
    dcd_alpha: Annotated[float, typer.Option(help="DCD: α, the share of the KD term (released: 0.2).")] = 0.2,
    dcd_temperature: Annotated[float, typer.Option(help="DCD: temperature T (released: 1).")] = 1.0,
    dcd_released: Annotated[bool, typer.Option(help="DCD: reproduce the released code (teacher's sorted top-K columns, scalar-MSE KD) for comparison.")] = False,
    layers: Annotated[str, typer.Option(help="Distilled student layers: all, last or i,j,... (uniform map onto the teacher's).")] = "all",
    temperature: Annotated[float, typer.Option(help="Logit KD temperature.")] = 2.0,
    nce_temperature: Annotated[float, typer.Option(help="Token NCE temperature τ.")] = 0.07,
    queue_size: Annotated[int, typer.Option(help="Teacher keys in the NCE queue.")] = 4096,
    nce_max_tokens: Annotated[int, typer.Option(help="Tokens per step in the NCE loss (random subset).")] = 256,
    teacher_regions: Annotated[Path | None, typer.Option(help="Ablation: the teacher reads its OWN regions (needs --allow-misaligned).")] = None,
    allow_misaligned: Annotated[bool, typer.Option(help="Confirm the no-adaptation ablation (tokens matched by position).")] = False,
    questions: T.Questions = None, split: T.Split = None, split_file: T.SplitFile = None, val_split: T.ValSplit = None,
    val_annotations: T.ValAnnotations = None, val_questions: T.ValQuestions = None,
    min_answer_count: T.MinAnswerCount = 9, answer_vocab: T.AnswerVocab = None, use_tags: T.UseTags = True,
    epochs: T.Epochs = 1, max_steps: T.MaxSteps = None, batch_size: T.BatchSize = 32, grad_accum: T.GradAccum = 1,
    lr: T.Lr = 1e-4, weight_decay: T.WeightDecay = 0.01, warmup: T.Warmup = 0.1, schedule: T.Schedule = "linear",
    clip_norm: T.ClipNorm = 1.0, bf16: T.Bf16 = False, save_every: T.SaveEvery = 0, eval_every: T.EvalEvery = 0,
    keep_checkpoints: T.KeepCheckpoints = 2, log_every: T.LogEvery = 10, resume: T.Resume = False,
    overwrite: T.Overwrite = False, device: DeviceOpt = "auto", seed: SeedOpt = 0,
) -> None:  # fmt: skip
    """Distill a student: DistillVLM (adapted teacher; attention MSE + token NCE + logit KD) or DCD (retrieval)."""
    from vlkd_cli.stages.distill import DistillConfig, parse_loss_weights, run

    values = dict(locals())
    values.update(losses=parse_loss_weights(values.pop("loss"), method), regions=Path(regions))
    fields = {k: v for k, v in values.items() if k in DistillConfig.__dataclass_fields__ and v is not None}
    cfg = DistillConfig(**fields, data=T.data_config(values), train=T.train_config(values))
    if method == "dcd":
        from vlkd_cli.stages.dcd import dual_from_scratch_warning

        warning = dual_from_scratch_warning(cfg.arch, cfg.student, cfg.losses)
        if warning:
            typer.echo(f"warning: {warning}", err=True)
    typer.echo(json.dumps(run(cfg), indent=2))
