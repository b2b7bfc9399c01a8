"""Ranking a retrieval gallery with a model: the images and captions of one problem, every pair through a
cross-encoder, or both towers of a dual encoder searched with faiss (optionally re-scored by a cross-encoder), and
the recall of the result. Used by `vlkd eval-retrieval` and the latency harness.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.captions import parse_captions
from vlkd_cli.data.karpathy import is_karpathy
from vlkd_cli.data.vl_datasets import Sample, caption_samples
from vlkd_cli.errors import InputError
from vlkd_cli.eval.retrieval import mean_over_folds, retrieval_recall
from vlkd_cli.jsonfile import read_json
from vlkd_cli.progress import progress_bar
from vlkd_cli.tasks.inference import InferenceModel
from vlkd_cli.tasks.pair_scores import image_embeddings, itm_pair_scores, text_embeddings

INDEXES = ("flat", "ivf", "hnsw")
TOP_K = 10  # recall is reported at 1, 5 and 10


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


def load_gallery(annotations: Path, split: str | None, regions: Regions) -> Gallery:
    """Images of the split (Karpathy: default test) that have captions, and those captions."""
    data = read_json(annotations)
    split = split or ("test" if is_karpathy(data) else None)
    captions = {i: c for i, c in parse_captions(data, Path(annotations), split).items() if c}
    if not captions:
        raise InputError(f"no captioned image in {split or 'the file'}", annotations)
    texts = caption_samples(regions, captions, source=f"{annotations} ({split or 'all images'})")
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


def rank_matrix_topk(scores: np.ndarray, gallery: Gallery) -> Ranking:
    """One fold's (I, T) matrix as top-K lists both ways (what `merge_folds` joins), with its recall."""
    i2t = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]  # (I, k)
    t2i = np.argsort(-scores.T, axis=1, kind="stable")[:, :TOP_K]  # (T, k)
    topk = {"i2t_scores": np.take_along_axis(scores, i2t, axis=1), "i2t_indices": i2t,
            "t2i_scores": np.take_along_axis(scores.T, t2i, axis=1), "t2i_indices": t2i}  # fmt: skip
    return Ranking(retrieval_recall(scores, gallery.text_image_ids, gallery.image_ids), topk=topk)


def rank_dual(gallery: Gallery, image_emb: np.ndarray, text_emb: np.ndarray, *, index: str = "flat",
              rerank_k: int = TOP_K, reranker=None) -> Ranking:  # fmt: skip
    """faiss top-K both ways, optionally re-scored by a cross-encoder; recall from the top-K lists."""
    from vlkd_cli.eval.gallery import search, topk_recall

    k = max(TOP_K, rerank_k if reranker is not None else TOP_K)
    i2t = search(image_emb, text_emb, min(k, len(text_emb)), index=index)  # (I, k) each
    t2i = search(text_emb, image_emb, min(k, len(image_emb)), index=index)  # (T, k) each
    if reranker is not None:
        from vlkd_cli.eval.rerank import rerank

        i2t, t2i = rerank(i2t[1], t2i[1], reranker)
    metrics = topk_recall(i2t[0], i2t[1], t2i[0], t2i[1], gallery.text_image_ids, gallery.image_ids)
    topk = {"i2t_scores": i2t[0], "i2t_indices": i2t[1], "t2i_scores": t2i[0], "t2i_indices": t2i[1]}
    return Ranking(metrics, topk=topk)


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
