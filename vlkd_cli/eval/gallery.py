"""faiss galleries for dual encoders: top-K inner-product search, exact (flat) or approximate (IVF, HNSW).

The scores are inner products, so the caller L2-normalises queries and gallery (then they are cosine
similarities, as CLIP-style dual encoders and CLIP_benchmark's `zeroshot_retrieval.py` score them); nothing here
normalises or checks norms. Recall from the returned lists: `topk_recall` (defined in `vlkd_cli.eval.retrieval`,
re-exported here); with `index="flat"` and K >= 10 it equals `retrieval_recall` on the full matrix when there
are no ties.

Indexes (faiss's own classes, used as documented in the faiss wiki "Faiss indexes"):

- `flat`: `IndexFlatIP`, exact.
- `ivf`: `IndexIVFFlat(IndexFlatIP, d, nlist, METRIC_INNER_PRODUCT)` trained on the gallery (k-means seeded by
  `seed`). `nlist` defaults to ≈ 4·sqrt(G), lowered so that every centroid has >= 39 training points (faiss's
  own minimum; 1 list below 78 vectors, which is then an exact search).
- `hnsw`: `IndexHNSWFlat(d, M, METRIC_INNER_PRODUCT)`, level generator seeded by `seed`.

When `nprobe` (IVF) or `ef_search` (HNSW) is not given it is calibrated: on up to 512 of the queries (drawn with
`seed`) the exact top-max(k, 10) is computed with a flat index, and the smallest setting whose overlap with it
reaches 0.96 (a margin over the 0.95 target for the sample) is used: nprobe by doubling then bisection (more
lists probed can only help), efSearch by doubling from max(k, 16).

Determinism: the same inputs give the same results. faiss's thread count is left alone; since faiss's
multi-threaded HNSW insertion order is unspecified (faiss wiki "Threads and asynchronous calls"), HNSW vectors
are inserted one per `add` call (about 2x slower to build) unless `deterministic=False`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import faiss
import numpy as np

from vlkd_cli.eval.retrieval import topk_recall

__all__ = ["INDEXES", "Tuned", "build_index", "default_nlist", "search", "search_index", "topk_recall", "tune"]

INDEXES = ("flat", "ivf", "hnsw")
MIN_POINTS_PER_CENTROID = 39  # faiss warns below this many training points per k-means centroid
TARGET_OVERLAP = 0.95  # ANN top-10 must find this share of the exact top-10
_SAMPLE_TARGET = 0.96  # what the calibration sample must reach (margin for sampling noise)
_CALIBRATION_QUERIES = 512


@dataclass(frozen=True)
class Tuned:
    """The search-time setting that was used and the overlap with exact search it reached on the sample."""

    nprobe: int | None = None
    ef_search: int | None = None
    sample_overlap: float | None = None


def search(
    queries,
    gallery,
    k: int,
    index: str = "flat",
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_search: int | None = None,
    seed: int = 0,
    deterministic: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` gallery items of every query by inner product.

    Args:
        queries: (Q, D) float, L2-normalised by the caller (cast to float32).
        gallery: (G, D) float, L2-normalised by the caller (cast to float32).
        k: results per query; if k > G the missing slots are index -1 with score -inf.
        index: "flat" (exact), "ivf" or "hnsw".
        nlist: IVF lists (default `default_nlist(G)`).
        nprobe: IVF lists visited per query (default: calibrated, see the module docstring).
        hnsw_m: HNSW graph degree M.
        ef_search: HNSW search beam, >= k (default: calibrated).
        seed: k-means seed (IVF), level generator seed (HNSW), calibration sample.
        deterministic: HNSW only: insert sequentially so that the graph does not depend on thread timing.

    Returns:
        scores (Q, k) float32, best first, and indices (Q, k) int64 into the gallery.
    """
    queries, gallery = _matrix(queries, "queries"), _matrix(gallery, "gallery")
    if queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries have dimension {queries.shape[1]}, gallery {gallery.shape[1]}")
    _check_k(k)
    if index == "hnsw" and ef_search is not None and ef_search < k:
        raise ValueError(f"ef_search must be >= k={k}, got {ef_search}")
    built = build_index(gallery, index, nlist=nlist, hnsw_m=hnsw_m, seed=seed, deterministic=deterministic)
    tune(built, queries, gallery, k, nprobe=nprobe, ef_search=ef_search, seed=seed)
    return search_index(built, queries, k)


def default_nlist(num_gallery: int) -> int:
    """≈ 4·sqrt(G) IVF lists, at most G // 39 so that k-means has >= 39 points per centroid, at least 1."""
    return max(1, min(round(4 * math.sqrt(num_gallery)), num_gallery // MIN_POINTS_PER_CENTROID))


def build_index(
    gallery: np.ndarray,
    index: str = "flat",
    *,
    nlist: int | None = None,
    hnsw_m: int = 32,
    seed: int = 0,
    deterministic: bool = True,
) -> faiss.Index:
    """A faiss inner-product index holding `gallery` (G, D) float32 (trained first for IVF)."""
    gallery = _matrix(gallery, "gallery")
    num_gallery, dim = gallery.shape
    if index == "flat":
        built = faiss.IndexFlatIP(dim)
        built.add(gallery)
    elif index == "ivf":
        lists = default_nlist(num_gallery) if nlist is None else nlist
        if not 1 <= lists <= num_gallery:
            raise ValueError(f"nlist must be between 1 and the gallery size {num_gallery}, got {lists}")
        quantizer = faiss.IndexFlatIP(dim)
        built = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
        built.cp.seed = seed
        if lists == 1:  # nothing to cluster (and too few points for faiss's k-means): one list, exhaustive
            quantizer.add(gallery.mean(axis=0, keepdims=True))
            built.is_trained = True
        else:
            built.train(gallery)
        built.add(gallery)
    elif index == "hnsw":
        if hnsw_m < 2:
            raise ValueError(f"hnsw_m must be >= 2, got {hnsw_m}")
        built = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        built.hnsw.rng = faiss.RandomGenerator(seed)
        if deterministic:
            for row in range(num_gallery):  # one vertex per call: no concurrent insertions
                built.add(gallery[row : row + 1])
        else:
            built.add(gallery)
    else:
        raise ValueError(f"index must be one of {', '.join(INDEXES)}, got {index!r}")
    return built


def tune(
    built: faiss.Index,
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    *,
    nprobe: int | None = None,
    ef_search: int | None = None,
    seed: int = 0,
) -> Tuned:
    """Set nprobe (IVF) or efSearch (HNSW) on `built`: the given value, or the one calibrated on `queries` (Q, D)
    against exact search of `gallery` (G, D) (the vectors `built` holds). Flat: nothing to set."""
    _check_k(k)
    if isinstance(built, faiss.IndexIVF):
        if nprobe is not None:
            if not 1 <= nprobe <= built.nlist:
                raise ValueError(f"nprobe must be between 1 and nlist={built.nlist}, got {nprobe}")
            built.nprobe = nprobe
            return Tuned(nprobe=nprobe)
        return _calibrate_nprobe(built, queries, gallery, k, seed)
    if isinstance(built, faiss.IndexHNSW):
        if ef_search is not None:
            if ef_search < k:
                raise ValueError(f"ef_search must be >= k={k}, got {ef_search}")
            built.hnsw.efSearch = ef_search
            return Tuned(ef_search=ef_search)
        return _calibrate_ef(built, queries, gallery, k, seed)
    return Tuned()


def search_index(built: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k) float32 scores best first and (Q, k) int64 indices; empty slots: index -1, score -inf."""
    _check_k(k)
    scores, indices = built.search(_matrix(queries, "queries"), k)
    scores[indices < 0] = -np.inf
    return scores.astype(np.float32, copy=False), indices.astype(np.int64, copy=False)


# ------------------------------------------------------------------------------------------- calibration
def _calibration_sample(queries, gallery, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to 512 queries (S, D) and their exact top-max(k, 10) gallery indices (S, k')."""
    queries, gallery = _matrix(queries, "queries"), _matrix(gallery, "gallery")
    rng = np.random.default_rng(seed)
    count = min(len(queries), _CALIBRATION_QUERIES)
    sample = queries[np.sort(rng.choice(len(queries), size=count, replace=False))]
    exact = faiss.IndexFlatIP(gallery.shape[1])
    exact.add(gallery)
    return sample, exact.search(sample, min(max(k, 10), len(gallery)))[1]


def _overlap(built: faiss.Index, sample: np.ndarray, truth: np.ndarray) -> float:
    """Share of the exact top-k' (S, k') that the index returns in its own top-k'."""
    found = built.search(sample, truth.shape[1])[1]
    hits = sum(len(np.intersect1d(a, b[b >= 0])) for a, b in zip(truth, found))
    return hits / truth.size


def _calibrate_nprobe(built: faiss.IndexIVF, queries, gallery, k: int, seed: int) -> Tuned:
    sample, truth = _calibration_sample(queries, gallery, k, seed)
    reached: dict[int, float] = {}

    def ok(value: int) -> bool:
        built.nprobe = value
        reached[value] = _overlap(built, sample, truth)
        return reached[value] >= _SAMPLE_TARGET

    low, high = 0, 1  # low fails (0 = nothing probed), high is the candidate
    while high < built.nlist and not ok(high):
        low, high = high, min(2 * high, built.nlist)
    if high not in reached:
        ok(high)  # high == nlist: exhaustive, always enough
    while high - low > 1:  # the overlap only grows with nprobe
        middle = (low + high) // 2
        low, high = (low, middle) if ok(middle) else (middle, high)
    built.nprobe = high
    return Tuned(nprobe=high, sample_overlap=reached[high])


def _calibrate_ef(built: faiss.IndexHNSW, queries, gallery, k: int, seed: int) -> Tuned:
    sample, truth = _calibration_sample(queries, gallery, k, seed)
    ceiling = max(k, len(gallery))
    ef = max(k, 16)
    while True:
        built.hnsw.efSearch = ef
        overlap = _overlap(built, sample, truth)
        if overlap >= _SAMPLE_TARGET or ef >= ceiling:
            break
        ef = min(2 * ef, ceiling)
    if overlap < _SAMPLE_TARGET:
        warnings.warn(f"HNSW reaches only {overlap:.3f} of exact top-{truth.shape[1]} at efSearch={ef}", stacklevel=3)
    return Tuned(ef_search=ef, sample_overlap=overlap)


# ------------------------------------------------------------------------------------------- input checks
def _matrix(values, name: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be floating point, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains non-finite values")
    return array


def _check_k(k: int) -> None:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
