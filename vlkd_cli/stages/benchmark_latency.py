"""`vlkd benchmark-latency`: inference latency of each `--model`, end to end and per stage, teacher vs student.

Captioning and VQA models are timed end to end from image files (`bench/pipeline.py`: decode, detector,
backbone_roi, inputs, transformer, head, total) for each `--batch-sizes` entry, on the same images for every model
(the first B files under `--images`, cycled), after `--warmup` discarded iterations, over `--iters`. Retrieval models
are timed ranking a gallery (`bench/retrieval.py`). The first `--model` is the reference (e.g. the teacher): every row
carries its median's ratio to the reference's for the same batch size and stage. Each model runs with its own
detector when `--detector` is given once per model (a single one serves all), at its own image size (its
detector's, else its regions lineage's).

Outputs (one directory, written atomically): `latency.json` (results rows, per-model parameters and peak RSS,
environment, protocol) and `latency.safetensors` (kind `latency`: the raw per-iteration milliseconds, float64,
named `<model index>.<batch size>.<stage>`). See docs/artifacts.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from vlkd_cli.artifacts.atomic import atomic_dir
from vlkd_cli.artifacts.io import build_metadata, input_record, save_artifact
from vlkd_cli.artifacts.model_dir import read_model_config
from vlkd_cli.bench.pipeline import model_proposals
from vlkd_cli.bench.runs import add_ratios, run_end_to_end, run_retrieval
from vlkd_cli.bench.timing import (
    environment,
)
from vlkd_cli.data.image_index import image_list_sha256, resolve_images
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models.precision import check_precision, precision_context
from vlkd_cli.runtime import resolve_device, seed_everything

COMMAND = "benchmark-latency"
JSON_NAME, TENSORS_NAME = "latency.json", "latency.safetensors"
TASKS = ("caption", "vqa", "retrieval")
MIN_RERANK_K = 10  # recall is computed at 10


@dataclass(frozen=True)
class LatencyConfig:
    """Resolved options of `benchmark-latency` (stamped into latency.safetensors as `vlkd.config`)."""

    models: tuple[str, ...]
    images: Path
    out: Path
    detector: tuple[Path, ...] | Path | None = None  # one for every model, or one per model (in --model order)
    proposals: Path | None = None
    task: str | None = None
    batch_sizes: tuple[int, ...] | None = None  # None: 1,8 end to end; 64 (items per forward pass) for retrieval
    warmup: int = 3
    iters: int = 10
    decode_length: int = 20
    beam_size: int = 1
    image_size: int | None = None
    gallery_images: int = 100
    gallery_texts: int = 500
    max_pairs: int | None = None
    rerank_k: int = 16
    threads: int | None = None
    device: str = "auto"
    precision: str = "fp32"  # fp32, bf16 (autocast: transformer, detector and backbone) or int8 (Linear layers, CPU)
    seed: int = 0


def check_config(cfg: LatencyConfig) -> None:
    """Usage errors (exit 2) before anything is loaded."""
    if not cfg.models:
        raise UsageError("give at least one --model DIR")
    detectors = detector_paths(cfg)
    if detectors and cfg.proposals is not None:
        raise UsageError("give at most one of --detector DIR or --proposals results.json")
    if len(detectors) > 1 and len(detectors) != len(cfg.models):
        raise UsageError(f"{len(cfg.models)} --model and {len(detectors)} --detector: give one --detector for all "
                         "models, or one per model")  # fmt: skip
    if cfg.task is not None and cfg.task not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
    positive = {"--iters": cfg.iters, "--decode-length": cfg.decode_length, "--beam-size": cfg.beam_size,
                "--gallery-images": cfg.gallery_images, "--gallery-texts": cfg.gallery_texts,
                "--max-pairs": 1 if cfg.max_pairs is None else cfg.max_pairs,
                "--threads": 1 if cfg.threads is None else cfg.threads}  # fmt: skip
    for name, value in positive.items():
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    check_precision(cfg.precision)
    if cfg.warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {cfg.warmup}")
    if cfg.rerank_k < MIN_RERANK_K:
        raise UsageError(f"--rerank-k must be at least {MIN_RERANK_K}, got {cfg.rerank_k}")
    if cfg.image_size is not None and not 32 <= cfg.image_size <= 4096:
        raise UsageError(f"--image-size must be within 32..4096, got {cfg.image_size}")
    if cfg.batch_sizes is not None and (not cfg.batch_sizes or min(cfg.batch_sizes) < 1):
        raise UsageError("--batch-sizes must be positive integers")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise UsageError("--out must be a directory (it exists as a file)", out)
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in (JSON_NAME, TENSORS_NAME))
        if foreign:
            raise UsageError(f"--out holds other files ({', '.join(foreign[:3])}): choose a new directory", out)


def detector_paths(cfg: LatencyConfig) -> tuple[Path, ...]:
    """The `--detector` paths as a tuple (none, one for all models, or one per model)."""
    if cfg.detector is None:
        return ()
    if isinstance(cfg.detector, str | Path):
        return (Path(cfg.detector),)
    return tuple(Path(d) for d in cfg.detector)


def resolve_task(cfg: LatencyConfig, configs: list[tuple[str, dict]]) -> str:
    """The task all models share (exit 3 for a model of another task, or pretrain models)."""
    for arg, config in configs:
        found = config.get("task")
        if found not in TASKS:
            raise InputError(f"a {found} model has no inference to time (caption, vqa or retrieval)", arg)
        if cfg.task is not None and found != cfg.task:
            raise InputError(f"a {found} model, but --task is {cfg.task}", arg)
    tasks = {config["task"] for _, config in configs}
    if len(tasks) > 1:
        raise InputError(f"the models are of different tasks ({', '.join(sorted(tasks))}): time one task at a time")
    task = tasks.pop()
    if task == "caption":
        for arg, config in configs:
            if cfg.decode_length >= int(config["layout"]["max_text_len"]):
                raise UsageError(f"--decode-length {cfg.decode_length} needs max_text_len > {cfg.decode_length}; "
                                 f"{arg} has {config['layout']['max_text_len']}")  # fmt: skip
    return task


def _protocol(cfg: LatencyConfig, device: torch.device) -> dict[str, Any]:
    """What was timed and how, stated in latency.json."""
    sync = ", torch.cuda.synchronize() before and after each" if device.type == "cuda" else ""
    return {
        "warmup": cfg.warmup,
        "iters": cfg.iters,
        "decode_length": cfg.decode_length,
        "beam_size": cfg.beam_size,
        "clock": f"time.perf_counter around each stage{sync}; torch.inference_mode, eval mode",
        "precision": {"fp32": "float32", "bf16": "bfloat16 torch.autocast around every stage",
                      "int8": "the transformer's Linear layers dynamically quantised (qint8); CNNs float32"}[
            cfg.precision],  # fmt: skip
        "statistics": "median, p90 (numpy.percentile, linear), mean of the kept iterations, in milliseconds",
        "reference": "ratio_to_reference = median / the first --model's median for the same batch size and stage",
    }


def run(cfg: LatencyConfig) -> dict[str, Any]:
    """Time every model and write `latency.json` + `latency.safetensors` into `cfg.out` atomically.

    Returns:
        The latency.json document.
    """
    check_config(cfg)
    previous_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg)
    finally:
        torch.set_num_threads(previous_threads)


def _run(cfg: LatencyConfig) -> dict[str, Any]:
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    configs = [(arg, read_model_config(Path(arg), "model")) for arg in cfg.models]  # fail fast: exit 2 / 3
    task = resolve_task(cfg, configs)
    refs = resolve_images(cfg.images)
    proposals = model_proposals(len(cfg.models), detector_paths(cfg), cfg.proposals, refs, device)
    mode = "retrieval" if task == "retrieval" else "end-to-end"
    runner = run_retrieval if mode == "retrieval" else run_end_to_end
    check_precision(cfg.precision, device)
    with precision_context(cfg.precision, device):
        rows, infos, tensors = runner(cfg, refs, proposals, device)
    add_ratios(rows, cfg.models[0])
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    config["detector"] = [str(d) for d in detector_paths(cfg)] or None
    document = {
        "task": task,
        "mode": mode,
        "precision": cfg.precision,
        "reference": cfg.models[0],
        "protocol": _protocol(cfg, device),
        "environment": environment(device),
        "models": infos,
        "results": rows,
    }
    inputs = [input_record(Path(arg), "model") for arg in cfg.models]
    inputs.append({"path": str(cfg.images), "kind": "images", "sha256": image_list_sha256(refs)})
    for detector in dict.fromkeys(detector_paths(cfg)):
        inputs.append(input_record(detector, "detector"))
    if cfg.proposals is not None:
        inputs.append(input_record(cfg.proposals, "proposals"))
    metadata = build_metadata("latency", command=COMMAND, config=config, inputs=inputs,
                              extra={"vlkd.models": json.dumps(list(cfg.models)), "vlkd.unit": "ms",
                                     "vlkd.precision": cfg.precision})  # fmt: skip
    with atomic_dir(Path(cfg.out)) as tmp:
        (tmp / JSON_NAME).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        save_artifact(tmp / TENSORS_NAME, tensors, metadata)
    return document
