"""Two-stage retrieval: a fast first stage (dual encoder + faiss) shortlists K candidates per query in each direction,
a cross-encoder re-scores only those pairs, and each shortlist is re-ordered by the new scores.

This is the `k_test` scheme of ALBEF (`Retrieval.py:evaluation`, ITM score) and BLIP (`train_retrieval.py:
evaluation`, ITM + ITC score; k_test 256 on COCO, 128 on Flickr30K) written as our own code: there the top-k_test
entries of each row of the i2t and of the t2i similarity matrix are re-scored and every other entry is set to
-100, so a ground truth outside the shortlist ranks below all K candidates. Here the shortlists are kept as
lists, so such a ground truth is simply absent and `topk_recall` counts it as a miss (rank >= K) — the same
numbers whenever the re-scored values exceed ALBEF's -100 filler.

Differences from those loops, for scale: a pair shortlisted in both directions (image i lists text t AND text t
lists image i) is scored once, and the callback gets batches of distinct pairs in image-major order (consecutive
pairs share images, which lets a cross-encoder reuse image features).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
Lists = tuple[np.ndarray, np.ndarray]  # (scores (Q, K), indices (Q, K)), best first


def rerank(
    i2t_indices,
    t2i_indices,
    score_pairs: PairScorer,
    *,
    i2t_scores=None,
    t2i_scores=None,
    first_stage_weight: float = 0.0,
    batch_size: int = 4096,
) -> tuple[Lists, Lists]:
    """Re-score the first stage's shortlists with a cross-encoder and re-sort them.

    Args:
        i2t_indices: (num_images, K) text columns shortlisted per image (-1 = empty slot).
        t2i_indices: (num_texts, K') image rows shortlisted per text (-1 = empty slot).
        score_pairs: `score_pairs(image_rows (P,) int64, text_cols (P,) int64) -> (P,) scores`, higher = better
            match. Called once per distinct pair, on at most `batch_size` pairs at a time.
        i2t_scores, t2i_scores: first-stage scores aligned with the indices; needed when `first_stage_weight`
            is not 0.
        first_stage_weight: final score = cross-encoder score + weight × first-stage score (0: ALBEF, which ranks
            by the ITM score alone; 1: BLIP, ITM + ITC).
        batch_size: pairs per callback call.

    Returns:
        `((i2t_scores, i2t_indices), (t2i_scores, t2i_indices))`, each (Q, K) sorted best first (equal scores keep
        their first-stage order; empty slots last with score -inf), the format `topk_recall` takes. Scores have the
        callback's floating dtype (at least float32), so nothing is rounded.
    """
    i2t_indices, t2i_indices = _indices(i2t_indices, "i2t_indices"), _indices(t2i_indices, "t2i_indices")
    num_images, num_texts = i2t_indices.shape[0], t2i_indices.shape[0]
    _check_range(i2t_indices, num_texts, "i2t_indices")
    _check_range(t2i_indices, num_images, "t2i_indices")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    i2t_rows = np.broadcast_to(np.arange(num_images)[:, None], i2t_indices.shape)  # (I, K) image of each slot
    t2i_cols = np.broadcast_to(np.arange(num_texts)[:, None], t2i_indices.shape)  # (T, K') text of each slot
    i2t_keys = np.where(i2t_indices >= 0, i2t_rows * num_texts + i2t_indices, -1)  # (I, K) pair id = row·T + col
    t2i_keys = np.where(t2i_indices >= 0, t2i_indices * num_texts + t2i_cols, -1)  # (T, K')
    pairs = np.unique(np.concatenate([i2t_keys.ravel(), t2i_keys.ravel()]))
    pairs = pairs[pairs >= 0]  # (P,) distinct pairs, image-major order
    pair_scores = _score_all(pairs, num_texts, score_pairs, batch_size)  # (P,)
    i2t = _reorder(_lookup(i2t_keys, pairs, pair_scores), i2t_indices, i2t_scores, first_stage_weight, "i2t")
    t2i = _reorder(_lookup(t2i_keys, pairs, pair_scores), t2i_indices, t2i_scores, first_stage_weight, "t2i")
    return i2t, t2i


def _score_all(pairs: np.ndarray, num_texts: int, score_pairs: PairScorer, batch_size: int) -> np.ndarray:
    """(P,) pair ids → (P,) callback scores, one call per `batch_size` pairs."""
    parts = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        rows, cols = chunk // num_texts, chunk % num_texts  # (B,) each
        out = score_pairs(rows, cols)
        if hasattr(out, "detach"):
            out = out.detach().cpu().numpy()
        out = np.asarray(out)
        if out.shape != chunk.shape or out.dtype.kind not in "iuf":
            raise ValueError(f"score_pairs returned shape {out.shape} dtype {out.dtype} for {len(chunk)} pairs")
        if np.issubdtype(out.dtype, np.floating) and np.isnan(out).any():
            raise ValueError("score_pairs returned NaN")
        parts.append(out)
    if not parts:
        return np.empty(0, dtype=np.float32)
    return np.concatenate(parts).astype(np.result_type(*parts, np.float32), copy=False)


def _lookup(keys: np.ndarray, pairs: np.ndarray, pair_scores: np.ndarray) -> np.ndarray:
    """(Q, K) pair ids (-1 = empty) → (Q, K) scores (-inf for empty slots)."""
    out = np.full(keys.shape, -np.inf, dtype=pair_scores.dtype)
    filled = keys >= 0
    out[filled] = pair_scores[np.searchsorted(pairs, keys[filled])]
    return out


def _reorder(scores: np.ndarray, indices: np.ndarray, first_stage, weight: float, name: str) -> Lists:
    """Add the weighted first-stage scores, then sort each row best first (stable)."""
    if weight:
        if first_stage is None:
            raise ValueError(f"first_stage_weight={weight} needs {name}_scores")
        first = np.asarray(first_stage)
        if first.shape != indices.shape:
            raise ValueError(f"{name}_scores {first.shape} and {name}_indices {indices.shape} differ in shape")
        filled = indices >= 0
        scores = scores.astype(np.result_type(scores, first), copy=True)
        scores[filled] += weight * first[filled]
    order = np.argsort(-scores, axis=1, kind="stable")  # (Q, K); -inf (empty) sorts last
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(indices, order, axis=1)


def _indices(values, name: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be a 2-D integer array, got shape {array.shape} dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _check_range(indices: np.ndarray, num_candidates: int, name: str) -> None:
    if indices.size and (indices.min() < -1 or indices.max() >= num_candidates):
        raise ValueError(f"{name} must lie in [-1, {num_candidates}) (-1 = empty slot)")
    ordered = np.sort(indices, axis=1)
    if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)):
        raise ValueError(f"{name} repeat a candidate within one list")
