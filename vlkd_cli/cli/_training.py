"""Options shared by the training commands (finetune, adapt-teacher, distill), defined once; their defaults are
those of `TrainConfig`, `DataConfig` and the commands' configs (`stages.training_configs`), shown in `--help`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
UseTags = Annotated[bool, typer.Option("--tags/--no-tags", help="Oscar-style object tags from the region labels.")]
