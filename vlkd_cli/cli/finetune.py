"""`vlkd finetune` and `vlkd adapt-teacher`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vlkd_cli.cli import _training as T
from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._options import DeviceOpt, OutDir, SeedOpt

EPILOG = (
    "Example: vlkd finetune --task caption --model demo-teacher --regions regions.safetensors --features teacher "
    "--annotations demo/karpathy.json --split train --val-split val --eval-every 200 --epochs 10 --out teacher"
)
ADAPT_EPILOG = (
    "Example: vlkd adapt-teacher --teacher teacher --regions student-regions.safetensors --task caption "
    "--annotations demo/karpathy.json --split train --epochs 3 --out teacher-adapted"
)

Regions = Annotated[Path, typer.Option(help="A regions artifact (or the name of its shard set).")]
Task = Annotated[str, typer.Option(help="caption, vqa, retrieval or pretrain.")]


@command_errors
def finetune_cmd(
    task: Task,
    model: Annotated[str, typer.Option(help="A preset (tiny, demo-teacher, demo-student, oscar-base, minivlm, minilm-l6), an HF BERT-family dir, or a vlkd model dir.")],
    regions: Regions,
    annotations: T.Annotations,
    out: OutDir,
    features: Annotated[str, typer.Option(help="Which region features the model reads: student or teacher.")] = "student",
    arch: Annotated[str, typer.Option(help="cross (single-stream) or dual (two towers; retrieval only).")] = "cross",
    itm_negatives: Annotated[int, typer.Option(help="Retrieval cross-encoder: 0 = Oscar's binary ITM; K = rank each image's caption against K captions of other images (ViLT/METER irtr, softmax).")] = 0,
    questions: T.Questions = None, split: T.Split = None, split_file: T.SplitFile = None, val_split: T.ValSplit = None,
    val_annotations: T.ValAnnotations = None, val_questions: T.ValQuestions = None,
    min_answer_count: T.MinAnswerCount = 9, answer_vocab: T.AnswerVocab = None,
    max_text_len: T.MaxTextLen = 40, max_tag_len: T.MaxTagLen = 20, max_regions: T.MaxRegions = 50, use_tags: T.UseTags = True,
    epochs: T.Epochs = 1, max_steps: T.MaxSteps = None, batch_size: T.BatchSize = 32, grad_accum: T.GradAccum = 1,
    lr: T.Lr = 1e-4, weight_decay: T.WeightDecay = 0.01, warmup: T.Warmup = 0.1, schedule: T.Schedule = "linear",
    clip_norm: T.ClipNorm = 1.0, bf16: T.Bf16 = False, save_every: T.SaveEvery = 0, eval_every: T.EvalEvery = 0,
    keep_checkpoints: T.KeepCheckpoints = 2, log_every: T.LogEvery = 10, resume: T.Resume = False,
    overwrite: T.Overwrite = False, device: DeviceOpt = "auto", seed: SeedOpt = 0,
) -> None:  # fmt: skip
    """Train a VL model (caption / VQA / retrieval / pre-training) on a regions artifact."""
    _run(dict(locals()), adapt=False)


@command_errors
def adapt_teacher_cmd(
    teacher: Annotated[Path, typer.Option(help="The teacher model dir (vlkd finetune on its own regions).", exists=True, file_okay=False)],
    regions: Annotated[Path, typer.Option(help="The STUDENT's regions (teacher features are read on its boxes).")],
    task: Task,
    annotations: T.Annotations,
    out: OutDir,
    questions: T.Questions = None, split: T.Split = None, split_file: T.SplitFile = None, val_split: T.ValSplit = None,
    val_annotations: T.ValAnnotations = None, val_questions: T.ValQuestions = None,
    min_answer_count: T.MinAnswerCount = 9, answer_vocab: T.AnswerVocab = None, use_tags: T.UseTags = True,
    epochs: T.Epochs = 1, max_steps: T.MaxSteps = None, batch_size: T.BatchSize = 32, grad_accum: T.GradAccum = 1,
    lr: T.Lr = 5e-5, weight_decay: T.WeightDecay = 0.01, warmup: T.Warmup = 0.1, schedule: T.Schedule = "linear",
    clip_norm: T.ClipNorm = 1.0, bf16: T.Bf16 = False, save_every: T.SaveEvery = 0, eval_every: T.EvalEvery = 0,
    keep_checkpoints: T.KeepCheckpoints = 2, log_every: T.LogEvery = 10, resume: T.Resume = False,
    overwrite: T.Overwrite = False, device: DeviceOpt = "auto", seed: SeedOpt = 0,
) -> None:  # fmt: skip
    """Retrain a teacher on the student's region proposals with teacher features (DistillVLM's adaptation)."""
    values = dict(locals())
    values.update(model=str(values.pop("teacher")), features="teacher", arch=None)
    _run(values, adapt=True)


def _run(values: dict, *, adapt: bool) -> None:
    from vlkd_cli.stages.finetune import FinetuneConfig, run

    values["regions"] = Path(values["regions"])
    fields = {k: v for k, v in values.items() if k in FinetuneConfig.__dataclass_fields__ and v is not None}
    cfg = FinetuneConfig(**fields, data=T.data_config(values), train=T.train_config(values), adapt=adapt)
    summary = run(cfg, command="adapt-teacher" if adapt else "finetune")
    typer.echo(json.dumps(summary, indent=2))
