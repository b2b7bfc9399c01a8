"""`vlkd eval-retrieval`: image-text retrieval recall (R@1/5/10 both ways) from a score matrix or a model.

Sources of scores:
- `--scores FILE`: any tool's (num_images, num_texts) matrix (see `data/score_matrix.py`);
- a cross-encoder (ITM head): every (image, text) pair of the gallery, batched;
- a dual encoder: image and text embeddings searched with faiss (`--index flat|ivf|hnsw`);
- two-stage (`--rerank-model DIR --rerank-k K`): the dual encoder's top-K in each direction re-scored by a
  cross-encoder (ALBEF/BLIP's k_test scheme); candidates outside the top-K are misses.

Gallery: the images of the Karpathy `--split` (default test) or of a COCO captions file, and all their captions in
file order. `--folds 5` is the COCO 1K protocol: five consecutive folds of the images, each ranked on its own,
metrics averaged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlkd_cli.artifacts.eval_dir import EvalOutput, write_eval_dir
from vlkd_cli.artifacts.io import input_record
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.score_matrix import ScoreMatrix, read_score_matrix
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.eval.retrieval import fold_recall, retrieval_recall
from vlkd_cli.models.precision import check_precision, precision_context
from vlkd_cli.runtime import resolve_device
from vlkd_cli.tasks.inference import load_inference_model
from vlkd_cli.tasks.ranking import (
    INDEXES,
    TOP_K,
    Gallery,
    Ranking,
    cross_scores,
    dual_embeddings,
    load_gallery,
    merge_folds,
    pair_scorer,
    rank_dual,
    rank_matrix_topk,
)

COMMAND = "eval-retrieval"


@dataclass(frozen=True)
class EvalRetrievalConfig:
    out: Path
    scores: Path | None = None
    model: Path | None = None
    regions: Path | tuple[Path, ...] | None = None  # one set, or several read as one
    annotations: Path | None = None
    split: str | None = None
    index: str = "flat"
    rerank_model: Path | None = None
    rerank_k: int = 16
    folds: int = 1
    batch_size: int = 64
    device: str = "auto"
    precision: str = "fp32"  # fp32, bf16 (autocast) or int8 (dynamic quantisation of Linear layers, CPU)


def check_config(cfg: EvalRetrievalConfig) -> None:
    if (cfg.scores is None) == (cfg.model is None):
        raise UsageError("give either --scores scores.safetensors, or --model DIR --regions R --annotations A")
    if cfg.model is not None and (cfg.regions is None or cfg.annotations is None):
        raise UsageError("--model needs --regions and --annotations (the gallery's images and captions)")
    if cfg.scores is not None and cfg.rerank_model is not None:
        raise UsageError("--rerank-model re-scores a dual encoder's candidates: it needs --model, not --scores")
    if cfg.index not in INDEXES:
        raise UsageError(f"--index must be one of {', '.join(INDEXES)}, got {cfg.index!r}")
    if cfg.folds < 1 or cfg.rerank_k < TOP_K or cfg.batch_size < 1:
        raise UsageError(f"--folds and --batch-size must be positive and --rerank-k at least {TOP_K}")
    check_precision(cfg.precision)


def check_folds(num_images: int, folds: int, where: Path) -> None:
    if folds > 1 and num_images % folds:
        raise InputError(f"--folds {folds}: {num_images} images do not split into {folds} equal folds", where)


def _matrix_result(cfg: EvalRetrievalConfig, matrix: ScoreMatrix) -> tuple[dict, Ranking]:
    check_folds(len(matrix.image_ids), cfg.folds, cfg.scores or cfg.annotations)
    if cfg.folds == 1:
        metrics = retrieval_recall(matrix.scores, matrix.text_image_ids, matrix.image_ids)
    else:
        metrics = fold_recall(matrix.scores, matrix.text_image_ids, matrix.image_ids, folds=cfg.folds)
    return metrics, Ranking(metrics, matrix=matrix.scores)


def _model_result(cfg: EvalRetrievalConfig) -> tuple[dict, Ranking, Gallery, list[dict]]:
    with precision_context(cfg.precision, resolve_device(cfg.device)):
        return _rank_with_model(cfg)


def _rank_with_model(cfg: EvalRetrievalConfig) -> tuple[dict, Ranking, Gallery, list[dict]]:
    regions = Regions(cfg.regions)
    device = resolve_device(cfg.device)
    loaded = load_inference_model(cfg.model, regions, tasks=("retrieval",), device=device, precision=cfg.precision)
    gallery = load_gallery(cfg.annotations, cfg.split, regions)
    regions.check_finite(loaded.side, gallery.image_indices)
    check_folds(len(gallery.image_ids), cfg.folds, cfg.annotations)
    inputs = [loaded.record, *(input_record(p, "regions") for p in regions.paths),
              input_record(cfg.annotations, "annotations")]  # fmt: skip
    if not loaded.is_dual:
        if cfg.rerank_model is not None:
            raise UsageError("--rerank-model re-ranks a dual encoder's candidates: --model must be a dual encoder")
        if cfg.folds > 1:  # only the pairs within each fold are ranked: score those alone (1/folds of the work)
            parts = [gallery.fold(f, cfg.folds) for f in range(cfg.folds)]
            merged = merge_folds([rank_matrix_topk(cross_scores(loaded, p, cfg.batch_size), p) for p in parts], parts)
            return merged.metrics, merged, gallery, inputs
        matrix = cross_scores(loaded, gallery, cfg.batch_size)
        metrics, ranking = _matrix_result(cfg, ScoreMatrix(matrix, gallery.image_ids, gallery.text_image_ids))
        return metrics, ranking, gallery, inputs
    reranker = None
    if cfg.rerank_model is not None:
        cross = load_inference_model(cfg.rerank_model, regions, tasks=("retrieval",), device=device,
                                     precision=cfg.precision)  # fmt: skip
        if cross.is_dual:
            raise InputError("the re-ranking model must be a cross-encoder (arch cross)", cfg.rerank_model)
        regions.check_finite(cross.side, gallery.image_indices)
        inputs.append(cross.record)
    parts = [gallery.fold(f, cfg.folds) for f in range(cfg.folds)] if cfg.folds > 1 else [gallery]
    rankings = []
    for part in parts:
        image_emb, text_emb = dual_embeddings(loaded, part, cfg.batch_size)
        if cfg.rerank_model is not None:
            reranker = pair_scorer(cross, part, cfg.batch_size)
        rankings.append(rank_dual(part, image_emb, text_emb, index=cfg.index, rerank_k=cfg.rerank_k, reranker=reranker))
    merged = merge_folds(rankings, parts)
    return merged.metrics, merged, gallery, inputs


def predictions(ranking: Ranking, image_ids: np.ndarray, text_image_ids: np.ndarray) -> dict[str, list]:
    """Top-10 per query: i2t as text indices (columns) per image id, t2i as image ids per text index."""
    if ranking.topk is not None:
        i2t, t2i = ranking.topk["i2t_indices"][:, :TOP_K], ranking.topk["t2i_indices"][:, :TOP_K]
    else:
        scores = ranking.matrix
        i2t = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]  # (I, 10)
        t2i = np.argsort(-scores.T, axis=1, kind="stable")[:, :TOP_K]  # (T, 10)
    return {
        "i2t": [{"image_id": int(i), "texts": row.tolist()} for i, row in zip(image_ids, i2t)],
        "t2i": [
            {"text": n, "image_id": int(g), "image_ids": image_ids[row].tolist()}
            for n, (g, row) in enumerate(zip(text_image_ids, t2i))
        ],
    }


def run(cfg: EvalRetrievalConfig) -> dict[str, Any]:
    """Rank, compute recall, write the eval directory."""
    check_config(cfg)
    if cfg.scores is not None:
        matrix = read_score_matrix(cfg.scores)
        metrics, ranking = _matrix_result(cfg, matrix)
        image_ids, text_image_ids = matrix.image_ids, matrix.text_image_ids
        inputs = [input_record(cfg.scores, "scores")]
    else:
        metrics, ranking, gallery, inputs = _model_result(cfg)
        image_ids, text_image_ids = gallery.image_ids, gallery.text_image_ids
    tensors: dict[str, np.ndarray] = {"image_ids": image_ids, "text_image_ids": text_image_ids}
    tensors.update({"scores": ranking.matrix} if ranking.matrix is not None else ranking.topk)
    preds = predictions(ranking, image_ids, text_image_ids)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
    write_eval_dir(cfg.out, EvalOutput(preds, metrics, tensors, config, inputs), command=COMMAND)
    return {"images": len(image_ids), "texts": len(text_image_ids), "metrics": metrics}
