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

from vlkd_cli.artifacts.io import input_record
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.captions import parse_captions
from vlkd_cli.data.karpathy import is_karpathy
from vlkd_cli.data.score_matrix import ScoreMatrix, read_score_matrix
from vlkd_cli.data.vl_datasets import Sample, caption_samples
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.eval.pair_scores import image_embeddings, itm_pair_scores, text_embeddings
from vlkd_cli.eval.retrieval import fold_recall, mean_over_folds, retrieval_recall
from vlkd_cli.jsonfile import read_json
from vlkd_cli.progress import progress_bar
from vlkd_cli.runtime import resolve_device
from vlkd_cli.stages.eval_model import InferenceModel, load_inference_model
from vlkd_cli.stages.eval_output import EvalOutput, write_eval_dir

COMMAND = "eval-retrieval"
INDEXES = ("flat", "ivf", "hnsw")
TOP_K = 10  # recall is reported at 1, 5 and 10


@dataclass(frozen=True)
class EvalRetrievalConfig:
    out: Path
    scores: Path | None = None
    model: Path | None = None
    regions: Path | None = None
    annotations: Path | None = None
    split: str | None = None
    index: str = "flat"
    rerank_model: Path | None = None
    rerank_k: int = 16
    folds: int = 1
    batch_size: int = 64
    device: str = "auto"


@dataclass
class Gallery:
    """The images (rows) and texts (columns) of one ranking problem."""

    image_ids: np.ndarray  # (I,) int64
    image_indices: list[int]  # (I,) rows of the regions artifact
    texts: list[Sample]  # (T,) in gallery order
    text_image_ids: np.ndarray  # (T,) int64

    def fold(self, number: int, folds: int) -> Gallery:
        """Fold `number` of `folds` consecutive, equal parts of the images, with their texts."""
        size = len(self.image_ids) // folds
        keep = set(self.image_ids[number * size : (number + 1) * size].tolist())
        rows = [r for r, i in enumerate(self.image_ids) if int(i) in keep]
        texts = [t for t in self.texts if t.image_id in keep]
        return Gallery(self.image_ids[rows], [self.image_indices[r] for r in rows], texts,
                       np.asarray([t.image_id for t in texts], dtype=np.int64))  # fmt: skip


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


def load_gallery(cfg: EvalRetrievalConfig, regions: Regions) -> Gallery:
    """Images of the split (Karpathy: default test) that have captions, and those captions."""
    data = read_json(cfg.annotations)
    split = cfg.split or ("test" if is_karpathy(data) else None)
    captions = {i: c for i, c in parse_captions(data, Path(cfg.annotations), split).items() if c}
    if not captions:
        raise InputError(f"no captioned image in {split or 'the file'}", cfg.annotations)
    texts = caption_samples(regions, captions, source=f"{cfg.annotations} ({split or 'all images'})")
    image_ids = sorted(captions)
    return Gallery(np.asarray(image_ids, dtype=np.int64), [regions.index_of(i) for i in image_ids], texts,
                   np.asarray([t.image_id for t in texts], dtype=np.int64))  # fmt: skip


def cross_scores(loaded: InferenceModel, gallery: Gallery, batch_size: int) -> np.ndarray:
    """(I, T) ITM logits of every pair, the texts of one image row batched together."""
    matrix = np.empty((len(gallery.image_ids), len(gallery.texts)), dtype=np.float32)
    with progress_bar("scoring pairs", matrix.size) as advance:
        for row, (index, image_id) in enumerate(zip(gallery.image_indices, gallery.image_ids.tolist())):
            pairs = [Sample(index, image_id, t.text) for t in gallery.texts]
            matrix[row] = itm_pair_scores(loaded.model, loaded.collator, pairs, batch_size, advance)
    return matrix


def pair_scorer(loaded: InferenceModel, gallery: Gallery, batch_size: int):
    """`score_pairs(image_rows, text_cols) -> (P,) scores` of a cross-encoder, for the re-ranking stage."""

    def score_pairs(image_rows: np.ndarray, text_cols: np.ndarray) -> np.ndarray:
        pairs = [Sample(gallery.image_indices[r], int(gallery.image_ids[r]), gallery.texts[c].text)
                 for r, c in zip(image_rows.tolist(), text_cols.tolist())]  # fmt: skip
        return itm_pair_scores(loaded.model, loaded.collator, pairs, batch_size)

    return score_pairs


def dual_embeddings(loaded: InferenceModel, gallery: Gallery, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(I, P) image and (T, P) text embeddings, L2-normalised float32."""
    model, collator = loaded.model, loaded.collator
    with progress_bar("embedding", len(gallery.image_ids) + len(gallery.texts)) as advance:
        images = image_embeddings(model, collator, gallery.image_indices, batch_size, advance)
        texts = text_embeddings(model, collator, gallery.texts, batch_size, advance)
    return images.float().cpu().numpy(), texts.float().cpu().numpy()


@dataclass
class Ranking:
    """One fold's result: metrics and either the full matrix or top-K lists per direction."""

    metrics: dict[str, float]
    matrix: np.ndarray | None = None
    topk: dict[str, np.ndarray] | None = None


def rank_matrix(scores: np.ndarray, gallery_ids: np.ndarray, text_image_ids: np.ndarray) -> Ranking:
    return Ranking(retrieval_recall(scores, text_image_ids, gallery_ids), matrix=scores)


def rank_dual(cfg: EvalRetrievalConfig, gallery: Gallery, image_emb: np.ndarray, text_emb: np.ndarray,
              reranker=None) -> Ranking:  # fmt: skip
    """faiss top-K both ways, optionally re-scored by a cross-encoder; recall from the top-K lists."""
    from vlkd_cli.eval.gallery import search, topk_recall

    k = max(TOP_K, cfg.rerank_k if reranker is not None else TOP_K)
    i2t = search(image_emb, text_emb, min(k, len(text_emb)), index=cfg.index)  # (I, k) each
    t2i = search(text_emb, image_emb, min(k, len(image_emb)), index=cfg.index)  # (T, k) each
    if reranker is not None:
        from vlkd_cli.eval.rerank import rerank

        i2t, t2i = rerank(i2t[1], t2i[1], reranker)
    metrics = topk_recall(i2t[0], i2t[1], t2i[0], t2i[1], gallery.text_image_ids, gallery.image_ids)
    topk = {"i2t_scores": i2t[0], "i2t_indices": i2t[1], "t2i_scores": t2i[0], "t2i_indices": t2i[1]}
    return Ranking(metrics, topk=topk)


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
    regions = Regions(cfg.regions)
    device = resolve_device(cfg.device)
    loaded = load_inference_model(cfg.model, regions, tasks=("retrieval",), device=device)
    gallery = load_gallery(cfg, regions)
    check_folds(len(gallery.image_ids), cfg.folds, cfg.annotations)
    inputs = [loaded.record, *(input_record(p, "regions") for p in regions.paths),
              input_record(cfg.annotations, "annotations")]  # fmt: skip
    if not loaded.is_dual:
        if cfg.rerank_model is not None:
            raise UsageError("--rerank-model re-ranks a dual encoder's candidates: --model must be a dual encoder")
        matrix = cross_scores(loaded, gallery, cfg.batch_size)
        metrics, ranking = _matrix_result(cfg, ScoreMatrix(matrix, gallery.image_ids, gallery.text_image_ids))
        return metrics, ranking, gallery, inputs
    reranker = None
    if cfg.rerank_model is not None:
        cross = load_inference_model(cfg.rerank_model, regions, tasks=("retrieval",), device=device)
        if cross.is_dual:
            raise InputError("the re-ranking model must be a cross-encoder (arch cross)", cfg.rerank_model)
        inputs.append(cross.record)
    parts = [gallery.fold(f, cfg.folds) for f in range(cfg.folds)] if cfg.folds > 1 else [gallery]
    rankings = []
    for part in parts:
        image_emb, text_emb = dual_embeddings(loaded, part, cfg.batch_size)
        if cfg.rerank_model is not None:
            reranker = pair_scorer(cross, part, cfg.batch_size)
        rankings.append(rank_dual(cfg, part, image_emb, text_emb, reranker))
    merged = merge_folds(rankings, parts)
    return merged.metrics, merged, gallery, inputs


def merge_folds(rankings: list[Ranking], parts: list[Gallery]) -> Ranking:
    """One ranking whose top-K lists index the whole gallery: folds are consecutive blocks of images and of their
    texts, so a fold's local indices shift by the sizes of the folds before it."""
    if len(rankings) == 1:
        return rankings[0]
    image_offsets = np.cumsum([0] + [len(p.image_ids) for p in parts[:-1]])
    text_offsets = np.cumsum([0] + [len(p.texts) for p in parts[:-1]])
    topk = {
        "i2t_scores": np.concatenate([r.topk["i2t_scores"] for r in rankings]),
        "i2t_indices": np.concatenate([r.topk["i2t_indices"] + o for r, o in zip(rankings, text_offsets)]),
        "t2i_scores": np.concatenate([r.topk["t2i_scores"] for r in rankings]),
        "t2i_indices": np.concatenate([r.topk["t2i_indices"] + o for r, o in zip(rankings, image_offsets)]),
    }
    return Ranking(mean_over_folds([r.metrics for r in rankings]), topk=topk)


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
