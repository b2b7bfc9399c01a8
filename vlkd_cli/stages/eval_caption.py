"""`vlkd eval-caption`: caption a regions artifact with a model (or take any model's results file) and score it
with the COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE), equal to pycocoevalcap.

Scored images = the images that have results (the official demo's convention: CIDEr's IDF comes from them);
with a Karpathy split every image of the split must have one. Without `--annotations` only the results file is
written (for the COCO test server).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlkd_cli.artifacts.eval_dir import EvalOutput, write_eval_dir
from vlkd_cli.artifacts.io import input_record
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.batching import batched
from vlkd_cli.data.caption_results import caption_records, check_caption_coverage, read_caption_results
from vlkd_cli.data.captions import parse_captions
from vlkd_cli.data.karpathy import is_karpathy, load_karpathy
from vlkd_cli.data.vl_datasets import check_coverage
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.jsonfile import read_json
from vlkd_cli.models.precision import check_precision, precision_context
from vlkd_cli.progress import progress_bar
from vlkd_cli.runtime import resolve_device
from vlkd_cli.tasks.inference import InferenceModel, load_inference_model

COMMAND = "eval-caption"


@dataclass(frozen=True)
class EvalCaptionConfig:
    out: Path
    annotations: Path | None = None
    model: Path | None = None
    regions: Path | tuple[Path, ...] | None = None  # one set, or several read as one
    predictions: Path | None = None
    split: str | None = None
    split_file: Path | None = None  # a Karpathy file: score the images of its --split (references: --annotations)
    beam_size: int = 1
    max_length: int = 20
    batch_size: int = 32
    backend: str = "python"
    meteor: bool = True
    spice: bool = False
    device: str = "auto"
    precision: str = "fp32"  # fp32, bf16 (autocast) or int8 (dynamic quantisation of Linear layers, CPU)


@dataclass
class References:
    captions: dict[int, list[str]]  # image id -> reference captions (images with at least one)
    require_all: bool  # a Karpathy split: every image must have a result
    split: str | None


def check_config(cfg: EvalCaptionConfig) -> None:
    """Exactly one source of captions; a model needs regions; no metrics without references."""
    if (cfg.model is None) == (cfg.predictions is None):
        raise UsageError("give either --model DIR --regions R, or --predictions results.json")
    if cfg.model is not None and cfg.regions is None:
        raise UsageError("--model needs --regions (the regions artifact to caption)")
    if cfg.predictions is not None and cfg.annotations is None:
        raise UsageError("--predictions needs --annotations (the reference captions) to score")
    if cfg.backend not in ("python", "pycocoevalcap"):
        raise UsageError(f"--backend must be python or pycocoevalcap, got {cfg.backend!r}")
    if cfg.beam_size < 1 or cfg.max_length < 1 or cfg.batch_size < 1:
        raise UsageError("--beam-size, --max-length and --batch-size must be positive")
    check_precision(cfg.precision)


def load_references(path: Path, split: str | None) -> References:
    """Reference captions from a COCO captions file (a minimal `images: [{"id"}]` is enough) or a Karpathy split
    file (`--split`, default test)."""
    data = read_json(path)
    karpathy = is_karpathy(data)
    if karpathy and split is None:
        split = "test"
    captions = parse_captions(data, Path(path), split)
    return References({i: caps for i, caps in captions.items() if caps}, karpathy, split)


def split_references(annotations: Path, split_file: Path, split: str | None) -> References:
    """The references of `annotations` (COCO captions or Karpathy) for the images of a Karpathy split of
    `split_file` (default test); like a Karpathy split, every image of it must then have a result."""
    split = split or "test"
    images = {image.image_id for image in load_karpathy(split_file, split)}
    data = read_json(annotations)
    every = parse_captions(data, Path(annotations), split if is_karpathy(data) else None)
    captions = {i: caps for i, caps in every.items() if i in images and caps}
    missing = sorted(images - set(captions))
    if missing:
        raise InputError(f"{len(missing)} images of the {split} split of {split_file} have no reference caption "
                         f"(e.g. ids {missing[:5]})", annotations)  # fmt: skip
    return References(captions, True, split)


def generate_captions(
    loaded: InferenceModel, image_ids: list[int], regions: Regions, cfg: EvalCaptionConfig
) -> dict[int, str]:
    """Decode a caption for each image (greedy, or beam search with `beam_size`), batched."""
    captions: dict[int, str] = {}
    with progress_bar("captioning", len(image_ids)) as advance, torch.inference_mode(), \
            precision_context(cfg.precision, loaded.device):
        for chunk in batched(image_ids, cfg.batch_size):
            batch = loaded.collator.images_only([regions.index_of(i) for i in chunk]).to(loaded.device)
            result = loaded.model.generate(batch, beam_size=cfg.beam_size, max_length=cfg.max_length,
                                           tokenizer=loaded.tokenizer)  # fmt: skip
            captions.update(zip(chunk, result.texts))
            advance(len(chunk))
    return captions


def _model_captions(cfg: EvalCaptionConfig, refs: References | None) -> tuple[dict[int, str], list[dict[str, str]]]:
    regions = Regions(cfg.regions)
    loaded = load_inference_model(cfg.model, regions, tasks=("caption",), device=resolve_device(cfg.device),
                                  precision=cfg.precision)  # fmt: skip
    if refs is None:
        image_ids = [int(i) for i in regions.image_ids]
    else:
        image_ids = sorted(refs.captions)
        check_coverage(regions, image_ids, f"{cfg.annotations} ({refs.split or 'all images'})")
    regions.check_finite(loaded.side, (regions.index_of(i) for i in image_ids))
    inputs = [loaded.record] + [input_record(p, "regions") for p in regions.paths]
    return generate_captions(loaded, image_ids, regions, cfg), inputs


def score(captions: dict[int, str], refs: References, cfg: EvalCaptionConfig):
    """The official metrics over the images that have results."""
    from vlkd_cli.eval.caption_metrics import caption_scores

    gts = {i: refs.captions[i] for i in captions}
    return caption_scores(gts, captions, meteor=cfg.meteor, spice=cfg.spice, backend=cfg.backend)


def per_image_tensors(image_ids: list[int], per_image: dict[str, dict[int, float]]) -> dict[str, np.ndarray]:
    """`image_ids` (N,) int64 and one (N,) float64 per metric that has per-image values."""
    tensors = {"image_ids": np.asarray(image_ids, dtype=np.int64)}
    for metric, values in per_image.items():
        if values:
            tensors[metric] = np.asarray([values[i] for i in image_ids], dtype=np.float64)
    return tensors


def run(cfg: EvalCaptionConfig) -> dict[str, Any]:
    """Caption (or read results), score, write the eval directory; return a summary for printing."""
    check_config(cfg)
    if cfg.split_file is not None and cfg.annotations is None:
        raise UsageError("--split-file needs --annotations (the reference captions)")
    if cfg.split_file is not None:
        refs = split_references(cfg.annotations, cfg.split_file, cfg.split)
    else:
        refs = load_references(cfg.annotations, cfg.split) if cfg.annotations is not None else None
    if cfg.split is not None and refs is None:
        raise UsageError("--split needs --annotations (a Karpathy split file) or --split-file")
    if cfg.predictions is not None:
        captions = read_caption_results(cfg.predictions)
        inputs = [input_record(cfg.predictions, "predictions")]
    else:
        captions, inputs = _model_captions(cfg, refs)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
    if refs is None:
        write_eval_dir(cfg.out, EvalOutput(caption_records(captions), config=config), command=COMMAND)
        return {"images": len(captions), "metrics": None, "reasons": {}}
    where = cfg.predictions or (cfg.regions[0] if isinstance(cfg.regions, tuple) else cfg.regions)
    check_caption_coverage(captions, refs.captions.keys(), where, require_all=refs.require_all)
    result = score(captions, refs, cfg)
    ids = sorted(captions)
    inputs.append(input_record(cfg.annotations, "annotations"))
    output = EvalOutput(caption_records(captions), dict(result.metrics),
                        per_image_tensors(ids, result.per_image), config, inputs)  # fmt: skip
    write_eval_dir(cfg.out, output, command=COMMAND)
    return {"images": len(ids), "metrics": result.metrics, "reasons": result.reasons}
