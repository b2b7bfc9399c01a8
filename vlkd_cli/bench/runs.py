"""The timing runs of `vlkd benchmark-latency` (`cfg` is its `LatencyConfig`): each model end to end from image
files, per batch size and stage (`pipeline.py`), or ranking a gallery (`retrieval.py`); the rows of `latency.json`
and their ratios to the reference model. `proposals` holds each model's proposal source (its own detector, or one
shared by all), in `cfg.models` order.
"""

from __future__ import annotations

import gc
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlkd_cli.artifacts.model_dir import read_model_config
from vlkd_cli.bench import retrieval
from vlkd_cli.bench.models import DEFAULT_IMAGE_SIZE, BenchModel, load_bench_model
from vlkd_cli.bench.pipeline import STAGES, Proposals, end_to_end_iteration, prepare_end_to_end
from vlkd_cli.bench.timing import ModuleTimer, measure, peak_rss_mib, reset_peak_rss, rss_mib, summarize
from vlkd_cli.data.image_index import ImageRef

DEFAULT_BATCH_SIZES = {"caption": (1, 8), "vqa": (1, 8), "retrieval": (64,)}


def _row(arg: str, batch_size: int, stage: str, timings: dict[str, np.ndarray], skipped: str | None) -> dict:
    if stage in timings:
        return {"model": arg, "batch_size": batch_size, "stage": stage, **summarize(timings[stage])}
    return {"model": arg, "batch_size": batch_size, "stage": stage, "median_ms": None, "p90_ms": None,
            "mean_ms": None, "iters": 0, "skipped": skipped or "did not run"}  # fmt: skip


def _model_info(bm: BenchModel, image_size: int, proposals: Proposals, scope: tuple[str, float | None]) -> dict:
    return {
        "model": bm.arg,
        "task": bm.task,
        "arch": bm.config.get("arch", "cross"),
        "features": bm.lineage.side,
        "precision": bm.precision,
        "backbone": bm.lineage.backbone,
        "backbone_weights": bm.backbone_weights,
        "image_size": image_size,
        "roi_size": bm.lineage.roi_size,
        "regions_lineage": None if bm.lineage.regions is None else str(bm.lineage.regions),
        "detector": None if proposals.detector is None else str(proposals.path),
        "proposals": None if proposals.results is None else str(proposals.path),
        "parameters": bm.parameters(None if proposals.detector is None else proposals.detector.detector),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "peak_rss_scope": scope[0],
        "rss_before_mib": None if scope[1] is None else round(scope[1], 1),  # the process before the model loaded
    }


def _image_size(cfg, bm: BenchModel, proposals: Proposals) -> int:
    """--image-size, else the model's detector's input size, else its regions lineage's, else the default."""
    detector_size = getattr(proposals.detector, "image_size", None)
    return int(cfg.image_size or detector_size or bm.lineage.image_size or DEFAULT_IMAGE_SIZE)


def _backbone_of(proposals: Proposals):
    return None if proposals.detector is None else proposals.detector.backbone


def run_end_to_end(cfg, refs: list[ImageRef], proposals: list[Proposals], device: torch.device):
    rows, infos, tensors = [], [], {}
    for index, (arg, own) in enumerate(zip(cfg.models, proposals, strict=True)):
        scope = reset_peak_rss(), rss_mib()
        bm = load_bench_model(arg, detector_backbone=_backbone_of(own), device=device, precision=cfg.precision)
        image_size = _image_size(cfg, bm, own)
        timer = ModuleTimer(bm.model.vl, device)
        regions = {}
        for size in cfg.batch_sizes or DEFAULT_BATCH_SIZES[bm.task]:
            batch_refs = [refs[i % len(refs)] for i in range(size)]
            e2e = prepare_end_to_end(bm, own, batch_refs, image_size, cfg.decode_length, cfg.beam_size)
            with torch.inference_mode():
                timings = measure(partial(end_to_end_iteration, bm, e2e, timer, device), cfg.warmup, cfg.iters)
            regions[str(size)] = float(np.mean(e2e.regions)) if e2e.regions else 0.0
            for stage in STAGES:
                rows.append(_row(arg, size, stage, timings, own.skipped))
                if stage in timings:
                    tensors[f"{index}.{size}.{stage}"] = timings[stage]
                if stage == "backbone_roi" and bm.backbone is None:
                    rows[-1]["note"] = (
                        "RoI pooling of the detector's backbone maps (that backbone runs in the detector)"
                    )
        timer.remove()
        infos.append({**_model_info(bm, image_size, own, scope), "regions_per_image": regions})
        del bm, timer
        gc.collect()
    return rows, infos, tensors


def run_retrieval(cfg, refs: list[ImageRef], proposals: list[Proposals], device: torch.device):
    distinct = retrieval.distinct_refs(refs, cfg.gallery_images)
    gallery = retrieval.make_gallery(len(distinct), cfg.gallery_images, cfg.gallery_texts, cfg.seed)
    configs = [read_model_config(Path(arg), "model") for arg in cfg.models]
    is_dual = [c.get("arch", "cross") == "dual" for c in configs]
    rerank_index = next((i for i, dual in enumerate(is_dual) if not dual), None) if any(is_dual) else None
    cache: dict[int, tuple[BenchModel, Any, int]] = {}

    def load(index: int):
        if index not in cache:
            own = proposals[index]
            bm = load_bench_model(cfg.models[index], detector_backbone=_backbone_of(own), device=device,
                                  precision=cfg.precision)  # fmt: skip
            image_size = _image_size(cfg, bm, own)
            regions = retrieval.gallery_regions(bm, own, distinct, image_size, device)
            cache[index] = (bm, retrieval.inference_model(bm, regions, device), image_size)
        return cache[index]

    rows, infos, tensors = [], [], {}
    for index, arg in enumerate(cfg.models):
        scope = reset_peak_rss(), rss_mib()
        bm, loaded, image_size = load(index)
        for size in cfg.batch_sizes or DEFAULT_BATCH_SIZES["retrieval"]:
            if is_dual[index]:
                reranker = None if rerank_index is None else load(rerank_index)[1]
                timing = retrieval.time_dual(loaded, gallery, batch_size=size, warmup=cfg.warmup, iters=cfg.iters,
                                             reranker=reranker, rerank_k=cfg.rerank_k,
                                             reranker_arg=cfg.models[rerank_index] if reranker else "")  # fmt: skip
            else:
                timing = retrieval.time_cross(loaded, gallery, batch_size=size, max_pairs=cfg.max_pairs,
                                              warmup=cfg.warmup, iters=cfg.iters, seed=cfg.seed)  # fmt: skip
            for stage, values in timing.timings.items():
                rows.append({**_row(arg, size, stage, timing.timings, None), "gallery_images": cfg.gallery_images,
                             "gallery_texts": cfg.gallery_texts, **timing.notes.get(stage, {})})  # fmt: skip
                tensors[f"{index}.{size}.{stage}"] = values
        infos.append(_model_info(bm, image_size, proposals[index], scope))
        if index != rerank_index:
            del cache[index]
        del bm, loaded
        gc.collect()
    return rows, infos, tensors


def add_ratios(rows: list[dict], reference: str) -> None:
    """`ratio_to_reference` = median / the reference model's median for the same batch size and stage (a
    `two_stage_total` is compared with the reference's `total` when the reference has no two-stage row)."""
    medians = {(r["batch_size"], r["stage"]): r["median_ms"] for r in rows if r["model"] == reference}
    for row in rows:
        key = (row["batch_size"], row["stage"])
        if key not in medians and row["stage"].endswith("total"):
            key = (row["batch_size"], "total")
        base = medians.get(key)
        ok = row["median_ms"] is not None and base is not None and base > 0
        row["ratio_to_reference"] = row["median_ms"] / base if ok else None
