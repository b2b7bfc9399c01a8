"""Options shared by the training commands (finetune, adapt-teacher, distill), declared once: `@training_options`
adds the task-data options (`DataConfig`) and the training-loop options (`TrainConfig`) to a command, with those
configs' defaults, which `--help` shows."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from vlkd_cli.cli._config_file import ConfigOpt
from vlkd_cli.cli._options import SeedOpt
from vlkd_cli.data.task_config import DataConfig
from vlkd_cli.train.config import TrainConfig

Annotations = Annotated[Path, typer.Option(help="COCO captions or Karpathy JSON (VQA v2 annotations for --task vqa).", exists=True, dir_okay=False)]
Questions = Annotated[Path | None, typer.Option(help="VQA v2 questions JSON (--task vqa).", exists=True, dir_okay=False)]
Split = Annotated[str | None, typer.Option(help="Karpathy split of the training images (train = train + restval).")]
SplitFile = Annotated[Path | None, typer.Option(help="Karpathy JSON defining --split/--val-split (default: --annotations).", exists=True, dir_okay=False)]
ValSplit = Annotated[str | None, typer.Option(help="Karpathy split used for --eval-every (e.g. val).")]
ValAnnotations = Annotated[Path | None, typer.Option(help="Validation annotations (instead of --val-split).", exists=True, dir_okay=False)]
ValQuestions = Annotated[Path | None, typer.Option(help="Validation VQA questions.", exists=True, dir_okay=False)]
MinAnswerCount = Annotated[int, typer.Option(help="VQA answer vocabulary: answers seen at least this often (VQA v2 standard: 9).")]
AnswerVocab = Annotated[Path | None, typer.Option(help="VQA answer vocabulary as a JSON list (instead of --min-answer-count).", exists=True, dir_okay=False)]
Epochs = Annotated[int, typer.Option(help="Passes over the training samples.")]
MaxSteps = Annotated[int | None, typer.Option(help="Optimizer steps (wins over --epochs).")]
BatchSize = Annotated[int, typer.Option(help="Global batch size (split over torchrun processes).")]
GradAccum = Annotated[int, typer.Option(help="Micro-batches per optimizer step.")]
Lr = Annotated[float, typer.Option(help="Peak learning rate (AdamW).")]
WeightDecay = Annotated[float, typer.Option(help="AdamW weight decay (not on norms and biases).")]
Warmup = Annotated[float, typer.Option(help="Warm-up as a fraction of the steps.")]
Schedule = Annotated[str, typer.Option(help="linear, cosine or constant after warm-up.")]
ClipNorm = Annotated[float, typer.Option(help="Gradient clipping norm (0: off).")]
Bf16 = Annotated[bool, typer.Option(help="bfloat16 autocast.")]
SaveEvery = Annotated[int, typer.Option(help="Checkpoint every N steps (0: no checkpoints, only the final model).")]
EvalEvery = Annotated[int, typer.Option(help="Validate every N steps; the best checkpoint becomes the final model.")]
KeepCheckpoints = Annotated[int, typer.Option(help="Newest checkpoints kept.")]
LogEvery = Annotated[int, typer.Option(help="Write log.jsonl every N steps.")]
Resume = Annotated[bool, typer.Option(help="Continue from the newest checkpoint in --out.")]
Overwrite = Annotated[bool, typer.Option(help="Start over in an --out that holds checkpoints of another run.")]
MaxTextLen = Annotated[int, typer.Option(help="Caption/question tokens incl. [CLS] and [SEP].")]
MaxTagLen = Annotated[int, typer.Option(help="Object-tag tokens incl. [SEP] (0: no tags).")]
MaxRegions = Annotated[int, typer.Option(help="Region tokens per image.")]
INIT_FROM_TEACHER_HELP = ("Start from the teacher's layers (DistilBERT; DCD's useSucc): i,j,... (student layer n = "
                          "teacher layer i_n, e.g. 0,3,5 of 6) or uniform (spread evenly, first and last kept).")  # fmt: skip
UseTags = Annotated[bool, typer.Option("--tags/--no-tags", help="Oscar-style object tags from the region labels.")]

# (name, option type, default): what @training_options adds, in `--help` order.
SHARED: tuple[tuple[str, Any, Any], ...] = (
    ("config", ConfigOpt, None),
    ("questions", Questions, None), ("split", Split, None), ("split_file", SplitFile, None),
    ("val_split", ValSplit, None), ("val_annotations", ValAnnotations, None), ("val_questions", ValQuestions, None),
    ("min_answer_count", MinAnswerCount, DataConfig.min_answer_count), ("answer_vocab", AnswerVocab, None),
    ("epochs", Epochs, TrainConfig.epochs), ("max_steps", MaxSteps, TrainConfig.max_steps),
    ("batch_size", BatchSize, TrainConfig.batch_size), ("grad_accum", GradAccum, TrainConfig.grad_accum),
    ("lr", Lr, TrainConfig.lr), ("weight_decay", WeightDecay, TrainConfig.weight_decay),
    ("warmup", Warmup, TrainConfig.warmup), ("schedule", Schedule, TrainConfig.schedule),
    ("clip_norm", ClipNorm, TrainConfig.clip_norm), ("bf16", Bf16, TrainConfig.bf16),
    ("save_every", SaveEvery, TrainConfig.save_every), ("eval_every", EvalEvery, TrainConfig.eval_every),
    ("keep_checkpoints", KeepCheckpoints, TrainConfig.keep_checkpoints), ("log_every", LogEvery, TrainConfig.log_every),
    ("resume", Resume, TrainConfig.resume), ("overwrite", Overwrite, TrainConfig.overwrite),
    ("seed", SeedOpt, TrainConfig.seed),
)  # fmt: skip


def training_options(**defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the shared options to a command whose signature ends in `**shared`; `defaults` overrides some defaults
    (adapt-teacher's learning rate). The command receives them in `shared`."""
    unknown = set(defaults) - {name for name, _, _ in SHARED}
    if unknown:
        raise TypeError(f"training_options: {sorted(unknown)} are not shared options")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind,
                                   default=defaults.get(name, default)) for name, kind, default in SHARED]  # fmt: skip
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(func)
        def command(**options: Any) -> Any:
            return func(**options)

        command.__signature__ = inspect.Signature(own + added)  # type: ignore[attr-defined]
        return command

    return decorate
