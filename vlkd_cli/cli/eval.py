"""`vlkd eval-caption`, `vlkd eval-vqa` and `vlkd eval-retrieval`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._config_file import ConfigOpt
from vlkd_cli.cli._options import DeviceOpt, OptionalRegionsOpt, OutDir, PrecisionOpt, regions_value
from vlkd_cli.options import config_from_options

CAPTION_EPILOG = (
    "Example: vlkd eval-caption --model student --regions test-regions.safetensors --annotations "
    "dataset_coco.json --split test --beam-size 5 --out eval/student   "
    "(any model's results: --predictions captions_results.json --annotations captions_val2014.json)"
)
VQA_EPILOG = (
    "Example: vlkd eval-vqa --model vqa-student --regions val-regions.safetensors --questions "
    "v2_OpenEnded_mscoco_val2014_questions.json --annotations v2_mscoco_val2014_annotations.json --out eval/vqa   "
    "(without --annotations only predictions.json is written, for the test-dev server)"
)
RETRIEVAL_EPILOG = (
    "Example: vlkd eval-retrieval --model dual-student --regions test-regions.safetensors --annotations "
    "dataset_coco.json --split test --folds 5 --out eval/retrieval   "
    "(two-stage: --rerank-model teacher --rerank-k 16; any tool's matrix: --scores scores.safetensors; the student "
    "quantised: --precision int8)"
)


def _file(help_text: str) -> Any:
    """An optional existing JSON / safetensors file option."""
    return Annotated[Path | None, typer.Option(help=help_text, exists=True, dir_okay=False)]


def _opt(kind: Any, help_text: str) -> Any:
    return Annotated[kind, typer.Option(help=help_text)]


ModelOpt = Annotated[Path | None, typer.Option("--model", help="A vlkd model directory.", exists=True, file_okay=False)]
BatchOpt = _opt(int, "Items per forward pass.")
SplitFileOpt = _file("A Karpathy split JSON (dataset_coco.json): score only the images of its --split.")
WROTE = "wrote {out}/metrics.json, predictions.json, scores.safetensors"


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def print_metrics(title: str, metrics: dict[str, Any], reasons: dict[str, str] | None = None) -> None:
    """A rich table of the flat metrics; nested dicts (per type) are summarised; reasons for null metrics."""
    from rich.console import Console
    from rich.table import Table

    table = Table("metric", "value", title=title, box=None, pad_edge=False)
    for key, value in metrics.items():
        if isinstance(value, dict):
            continue
        table.add_row(key, _cell(value))
    console = Console(markup=False, highlight=False, soft_wrap=True)
    console.print(table)
    for metric, reason in (reasons or {}).items():
        console.print(f"{metric} is null: {reason}")


@command_errors
def eval_caption_cmd(
    out: OutDir,
    annotations: _file("Reference captions: COCO captions JSON (images may hold only ids) or a Karpathy split JSON. Without it, only predictions.json is written.") = None,
    model: ModelOpt = None,
    regions: OptionalRegionsOpt = None,
    predictions: _file('Any model\'s COCO results file [{"image_id", "caption"}] instead of --model.') = None,
    split: _opt(str | None, "Karpathy split to score (default for a Karpathy file or --split-file: test).") = None,
    split_file: SplitFileOpt = None,
    beam_size: _opt(int, "Beam width (1 = greedy).") = 1,
    max_length: _opt(int, "Maximum generated tokens.") = 20,
    batch_size: BatchOpt = 32,
    backend: _opt(str, "python (exact, no Java for BLEU/ROUGE/CIDEr) or pycocoevalcap (the official Java tokenizer and scorers).") = "python",
    meteor: _opt(bool, "METEOR 1.5 through the official jar (needs Java and pycocoevalcap).") = True,
    spice: _opt(bool, "Try SPICE (needs Java and the CoreNLP 3.6.0 models pycocoevalcap downloads).") = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    config: ConfigOpt = None,
) -> None:  # fmt: skip
    """Score captions with the COCO metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE), equal to pycocoevalcap."""
    options = {**locals(), "regions": regions_value(regions)}
    from vlkd_cli.stages.eval_caption import EvalCaptionConfig, run

    cfg = config_from_options(EvalCaptionConfig, options, ignore=["config"])
    summary = run(cfg)
    if summary["metrics"] is None:
        typer.echo(f"wrote {out}/predictions.json: captions of {summary['images']} images (no references given)")
        return
    print_metrics(f"{summary['images']} images, {precision}", summary["metrics"], summary["reasons"])
    typer.echo(WROTE.format(out=out))


@command_errors
def eval_vqa_cmd(
    out: OutDir,
    questions: Annotated[Path, typer.Option(help="VQA v2 questions JSON.", exists=True, dir_okay=False)],
    annotations: _file("VQA v2 annotations JSON. Without it, only predictions.json is written (test-dev / test-std).") = None,
    model: ModelOpt = None,
    regions: OptionalRegionsOpt = None,
    predictions: _file('Any model\'s results file [{"question_id", "answer"}] covering every question, instead of --model.') = None,
    split_file: SplitFileOpt = None,
    split: _opt(str | None, "With --split-file: the Karpathy split whose images' questions are scored (default: test).") = None,
    official_version: _opt(str, "2021 (GitHub HEAD of GT-Vision-Lab/VQA) or 2016 (the earlier version, as vendored by LAVIS).") = "2021",
    batch_size: BatchOpt = 64,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    config: ConfigOpt = None,
) -> None:  # fmt: skip
    """Score VQA answers with the official accuracy (overall, per question type, per answer type, in percent)."""
    options = {**locals(), "regions": regions_value(regions)}
    from vlkd_cli.stages.eval_vqa import EvalVqaConfig, run

    cfg = config_from_options(EvalVqaConfig, options, ignore=["config"])
    summary = run(cfg)
    if summary["metrics"] is None:
        typer.echo(f"wrote {out}/predictions.json: answers to {summary['questions']} questions (no annotations given)")
        return
    metrics = summary["metrics"]
    flat = {"overall": metrics["overall"], **{f"answer type {k}": v for k, v in metrics["perAnswerType"].items()}}
    print_metrics(f"VQA accuracy (%), {summary['questions']} questions, version {official_version}, {precision}",
                  flat)
    typer.echo(WROTE.format(out=out))


@command_errors
def eval_retrieval_cmd(
    out: OutDir,
    scores: _file("Any tool's score matrix: safetensors with scores (images, texts), image_ids, text_image_ids.") = None,
    model: ModelOpt = None,
    regions: OptionalRegionsOpt = None,
    annotations: _file("The gallery's captions: Karpathy split JSON or COCO captions JSON.") = None,
    split: _opt(str | None, "Karpathy split (default: test).") = None,
    index: _opt(str, "Dual encoders: faiss index, flat (exact), ivf or hnsw (large galleries).") = "flat",
    rerank_model: Annotated[Path | None, typer.Option(help="A cross-encoder that re-scores the dual encoder's top --rerank-k (two-stage).", exists=True, file_okay=False)] = None,
    rerank_k: _opt(int, "Candidates per query passed to --rerank-model.") = 16,
    folds: _opt(int, "Average over this many consecutive image folds (5 = the COCO 1K protocol).") = 1,
    batch_size: BatchOpt = 64,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    config: ConfigOpt = None,
) -> None:  # fmt: skip
    """Image-text retrieval recall R@1/5/10 both ways (any caption of an image counts for i2t; rank = strictly higher scores)."""
    options = {**locals(), "regions": regions_value(regions)}
    from vlkd_cli.stages.eval_retrieval import EvalRetrievalConfig, run

    cfg = config_from_options(EvalRetrievalConfig, options, ignore=["config"])
    summary = run(cfg)
    folded = (f", {folds} folds" if folds > 1 else "") + ("" if scores is not None else f", {precision}")
    print_metrics(f"retrieval (%), {summary['images']} images x {summary['texts']} texts{folded}", summary["metrics"])
    typer.echo(WROTE.format(out=out))
