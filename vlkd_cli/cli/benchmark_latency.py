"""`vlkd benchmark-latency`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vlkd_cli.cli._app import OPTION_ORDER, command_errors
from vlkd_cli.cli._config_file import ConfigOpt
from vlkd_cli.cli._options import DeviceOpt, OutDir, PrecisionOpt, SeedOpt
from vlkd_cli.options import config_from_options

EPILOG = (
    "Example: vlkd benchmark-latency --model teacher --model student --images demo/images --detector detector "
    "--batch-sizes 1,8 --warmup 3 --iters 20 --decode-length 20 --out latency/caption   "
    "(each model with its own detector: --model teacher --detector teacher-detector --model student --detector "
    "student-detector; a --detector pairs with the --model before it, one --detector serves every model)   "
    "(the first --model is the reference, e.g. the teacher: ratios are to its medians; retrieval models rank a "
    "gallery: --gallery-images 1000 --gallery-texts 5000 --max-pairs 20000)"
)


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """ "1,8" -> (1, 8) (duplicates dropped); UsageError (exit 2) for anything but positive integers."""
    from vlkd_cli.errors import UsageError

    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--batch-sizes must be comma-separated positive integers, got {text!r}")
    return tuple(dict.fromkeys(sizes))


def pair_detectors(order: list[str] | None, models: int, detectors: int) -> None:
    """Check how `--detector`s pair with `--model`s; UsageError (exit 2) when they do not.

    One `--detector` serves every model, wherever it stands. Otherwise there must be one per model, each given
    after its `--model` and before the next one (`--model T --detector TD --model S --detector SD`): the i-th
    detector then belongs to the i-th model. `order` is the command line's option names in order (None, or
    without the detectors, when they come from `--config`: then they pair by position).
    """
    from vlkd_cli.errors import UsageError

    if detectors <= 1:
        return
    if detectors != models:
        raise UsageError(f"{models} --model and {detectors} --detector: give one --detector for all models, or one "
                         "right after each --model")  # fmt: skip
    given = [name for name in order or [] if name in ("model", "detector")]
    if given.count("detector") != detectors or given.count("model") != models:
        return  # some come from --config: by position
    seen_models, owners = 0, []
    for name in given:
        if name == "model":
            seen_models += 1
        else:
            owners.append(seen_models)
    if owners != list(range(1, models + 1)):
        raise UsageError("each --detector must come right after its --model (--model T --detector TD --model S "
                         "--detector SD), or give a single --detector for all models")  # fmt: skip


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_latency(document: dict[str, Any]) -> None:
    """Rows stage × batch size; per model its median ms, and after the first model the ratio to it."""
    from rich.console import Console
    from rich.table import Table

    models = [info["model"] for info in document["models"]]
    rows = document["results"]
    title = f"{document['task']} latency, median ms ({document['mode']}, {document['precision']})"
    table = Table(title=title, box=None, pad_edge=False)
    table.add_column("stage")
    table.add_column("batch", justify="right")
    for n, model in enumerate(models):
        table.add_column(f"[{n}] {Path(model).name or model}", justify="right")
        if n:
            table.add_column(f"[{n}]/[0]", justify="right")
    by_key = {(r["model"], r["batch_size"], r["stage"]): r for r in rows}
    keys = list(dict.fromkeys((r["batch_size"], r["stage"]) for r in rows))
    for batch_size, stage in sorted(keys, key=lambda k: (k[0], keys.index(k))):
        cells = [stage, str(batch_size)]
        for n, model in enumerate(models):
            row = by_key.get((model, batch_size, stage))
            skipped = row is not None and row.get("skipped")
            cells.append("skipped" if skipped else _cell(None if row is None else row["median_ms"]))
            if n:
                cells.append(_cell(None if row is None else row.get("ratio_to_reference")))
        table.add_row(*cells)
    console = Console(markup=False, highlight=False, soft_wrap=True)
    console.print(table)
    for row in rows:
        if row.get("skipped") and row["model"] == models[0] and row["batch_size"] == rows[0]["batch_size"]:
            console.print(f"{row['stage']} skipped: {row['skipped']}")
    console.print("[0] is the reference (e.g. the teacher); [n]/[0] = median ratio to it")
    for n, info in enumerate(document["models"]):
        params = info["parameters"]
        console.print(
            f"[{n}] {info['model']}: {params['total']:,} parameters (transformer {params['transformer']:,}), "
            f"backbone {info['backbone']} ({info['backbone_weights']}), peak RSS {info['peak_rss_mib']:.0f} MiB"
        )


@command_errors
def benchmark_latency_cmd(
    ctx: typer.Context,
    model: Annotated[
        list[str],
        typer.Option("--model", help="A vlkd model directory; repeat. The first is the reference (e.g. the teacher)."),
    ],
    images: Annotated[
        Path,
        typer.Option(
            help="Images root: the first B files (sorted, cycled) are every model's input.",
            exists=True,
            file_okay=False,
        ),
    ],
    out: OutDir,
    detector: Annotated[
        list[Path] | None,
        typer.Option(
            help="A detector directory from `vlkd train-detector` (timed as the detector stage). One serves every "
            "model; or repeat it, each right after its --model, to give every model its own.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    proposals: Annotated[
        Path | None,
        typer.Option(
            help="Any detector's COCO results JSON (the detector stage is then skipped).", exists=True, dir_okay=False
        ),
    ] = None,
    task: Annotated[str | None, typer.Option(help="caption, vqa or retrieval (default: the models' task).")] = None,
    batch_sizes: Annotated[
        str | None,
        typer.Option(help="Comma-separated batch sizes (default 1,8; retrieval: items per forward pass, default 64)."),
    ] = None,
    warmup: Annotated[int, typer.Option(help="Iterations run first and discarded.")] = 3,
    iters: Annotated[int, typer.Option(help="Timed iterations.")] = 10,
    decode_length: Annotated[
        int, typer.Option(help="Caption decoding steps, exactly, for every model (no early stop).")
    ] = 20,
    beam_size: Annotated[int, typer.Option(help="Caption beam width (1 = greedy).")] = 1,
    image_size: Annotated[
        int | None,
        typer.Option(help="Longest image side for every model (default: each model's detector's, else its regions "
                     "lineage's, else 448)."),
    ] = None,
    gallery_images: Annotated[int, typer.Option(help="Retrieval: images in the gallery (files cycled).")] = 100,
    gallery_texts: Annotated[int, typer.Option(help="Retrieval: texts in the gallery (generated).")] = 500,
    max_pairs: Annotated[
        int | None, typer.Option(help="Retrieval: time this many cross-encoder pairs and extrapolate linearly to all.")
    ] = None,
    rerank_k: Annotated[
        int, typer.Option(help="Retrieval: candidates per query re-scored by the cross-encoder (two-stage).")
    ] = 16,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads (default: torch's).")] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
) -> None:
    """Inference latency end to end and per stage (decode, detector, backbone + RoI, transformer, head) per model."""
    options = dict(locals())
    options.pop("ctx")
    sizes = None if batch_sizes is None else parse_batch_sizes(batch_sizes)  # before torch is imported
    pair_detectors(ctx.meta.get(OPTION_ORDER), len(model), len(detector or ()))

    from vlkd_cli.stages.benchmark_latency import LatencyConfig, run

    options.update(models=tuple(options.pop("model")), batch_sizes=sizes,
                   detector=None if detector is None else tuple(detector))  # fmt: skip
    cfg = config_from_options(LatencyConfig, options, ignore=["config"])
    document = run(cfg)
    print_latency(document)
    typer.echo(f"wrote {out}/latency.json, latency.safetensors")
