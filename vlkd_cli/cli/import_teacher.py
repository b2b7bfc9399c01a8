"""`vlkd import-teacher`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlkd_cli.cli._app import command_errors
from vlkd_cli.cli._options import OutDir, SeedOpt
from vlkd_cli.errors import UsageError

EPILOG = (
    "Example: vlkd import-teacher --format oscar vinvl/coco_captioning_base_xe --out teacher-vinvl   "
    "(VQA: --task vqa --answers ans2label.json, Oscar's trainval_ans2label.pkl converted to JSON; then "
    "vlkd adapt-teacher --teacher teacher-vinvl --regions student-regions.safetensors ... before vlkd distill)"
)

_MAX_LISTED = 40  # keys printed per category; import_report.json lists them all


@command_errors
def import_teacher_cmd(
    out: OutDir,
    src: Annotated[Path | None, typer.Argument(help="The Oscar / VinVL checkpoint directory (config.json, pytorch_model.bin or model.safetensors, vocab.txt).", show_default=False)] = None,
    src_option: Annotated[Path | None, typer.Option("--src", help="The checkpoint directory (instead of the argument).")] = None,
    format: Annotated[str, typer.Option("--format", help="Checkpoint format: oscar (microsoft/Oscar, VinVL).")] = "oscar",
    task: Annotated[str | None, typer.Option(help="caption, vqa or retrieval (default: what the checkpoint's config/head says).")] = None,
    answers: Annotated[Path | None, typer.Option(help="VQA answers as JSON: a list (index -> answer) or Oscar's ans2label dict. Pickles are refused.", dir_okay=False)] = None,
    feature_backbone: Annotated[str | None, typer.Option(help="Name recorded as the teacher's feature backbone.")] = "vinvl",
    lower_case: Annotated[bool | None, typer.Option("--lower-case/--no-lower-case", help="Lower-case text (default: tokenizer_config.json's do_lower_case, else whether vocab.txt is uncased).", show_default=False)] = None,
    max_text_len: Annotated[int, typer.Option(help="Caption/question tokens incl. [CLS] and [SEP] (Oscar: 40).")] = 40,
    max_tag_len: Annotated[int, typer.Option(help="Object-tag tokens incl. [SEP] (Oscar: 70 - 40 = 30).")] = 30,
    max_regions: Annotated[int, typer.Option(help="Region tokens (Oscar: 50).")] = 50,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
    seed: SeedOpt = 0,
) -> None:  # fmt: skip
    """Turn an Oscar / VinVL checkpoint into a vlkd teacher model directory (caption, VQA or retrieval)."""
    if (src is None) == (src_option is None):
        raise UsageError("give the checkpoint directory once: as the SRC argument or as --src")
    from vlkd_cli.stages.import_teacher import ImportTeacherConfig, run

    cfg = ImportTeacherConfig(src=src or src_option, out=out, format=format, task=task, answers=answers,  # type: ignore[arg-type]
                              feature_backbone=feature_backbone, lowercase=lower_case, max_text_len=max_text_len,
                              max_tag_len=max_tag_len, max_regions=max_regions, overwrite=overwrite, seed=seed)  # fmt: skip
    result = run(cfg)
    report = result.report
    counts = report["counts"]
    typer.echo(
        f"wrote {result.out}: {result.task} teacher from {report['weights_file']} ({report['task_from']}); "
        f"{counts['loaded']} tensors loaded, {counts['ignored']} ignored, {counts['unknown']} unknown, "
        f"{counts['missing']} missing (all in {result.out / 'import_report.json'})"
    )
    for title, keys in (("ignored", [f"{k} ({why})" for k, why in report["ignored"].items()]),
                        ("unknown (not loaded)", report["unknown"]),
                        ("missing (freshly initialised)", report["missing"]),
                        ("renamed", [f"{a} -> {b}" for a, b in report["renamed"]]),
                        ("files not read", [f"{k} ({why})" for k, why in report["files_not_read"].items()])):  # fmt: skip
        _echo_keys(title, keys)
    for note in report["notes"]:
        typer.echo(f"note: {note}", err=True)


def _echo_keys(title: str, keys: list[str]) -> None:
    if not keys:
        return
    typer.echo(f"{title}: {len(keys)}")
    for key in keys[:_MAX_LISTED]:
        typer.echo(f"  {key}")
    if len(keys) > _MAX_LISTED:
        typer.echo(f"  ... and {len(keys) - _MAX_LISTED} more (see import_report.json)")
