"""Image-text retrieval recall, the standard protocol (VSE++ `evaluation.py:i2t/t2i`, ALBEF/BLIP `itm_eval`,
ViLT `compute_irtr_recall`; see docs/evaluation.md, "Retrieval (`eval-retrieval`)"). Our own code; the facts it
reproduces:

- image→text (i2t, "text retrieval"): an image scores a hit at K if ANY of its captions ranks in the top K of all
  texts (the rank of its best-ranked caption; captions per image may differ, e.g. COCO's 6-7);
- text→image (t2i, "image retrieval"): a text scores a hit at K if its single ground-truth image ranks in the top K;
- R@K = `100 * hits / n` as a Python float (n = #images for i2t, #texts for t2i); `rsum` = the six recalls summed
  (VSE++ prints it), `r_mean` = rsum / 6 (ALBEF/BLIP).

Ranks and ties (no official code defines ties; NumPy argsort and `torch.topk` order equal keys arbitrarily):

- rank = the number of candidates scoring STRICTLY higher than the (best) ground truth, i.e. ties favour the
  ground truth ("optimistic"); `pessimistic=True` counts equal-scoring other candidates as higher instead;
- `i2t_ties` / `t2i_ties` = the number of queries whose (best) ground truth has exactly the same score as at least
  one candidate that is not a ground truth of that query, anywhere in the ranking. Only these queries can change
  outcome between the optimistic and pessimistic conventions (or between argsort and topk), so 0 means the
  recalls are unambiguous; run both conventions to see whether the ties touch a K boundary.
- Scores are compared exactly as given (float32 stays float32, nothing is recomputed or rounded), and both
  directions read the very same matrix entries.
- An image with no caption can never hit in i2t (it still counts in the denominator).

Scale: the (num_images, num_texts) matrix is read in row chunks of about 4M entries, so 5,000 × 25,000 float32
needs no copy of the matrix and a few MB of temporaries (≈0.4 s on 2 cores, `bench/eval_retrieval.py`).

Also here: `fold_recall` (COCO 1K = VSE++ `evalrank(fold5=True)`: 5 consecutive folds of 1,000 images, metrics
averaged) and `topk_recall` (the same metrics from per-query top-K candidate lists, e.g. faiss search results or a
re-ranked shortlist, `vlkd_cli.eval.gallery` / `vlkd_cli.eval.rerank`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

KS = (1, 5, 10)
MISS = np.iinfo(np.int64).max  # the rank of a ground truth that was not retrieved at all (a miss at every K)
_CHUNK_ELEMENTS = 1 << 22  # entries of the score matrix compared at once


# ------------------------------------------------------------------------------------------- shared helpers
def ground_truth_rows(text_image_ids: Sequence[int], image_ids: Sequence[int] | None, num_images: int) -> np.ndarray:
    """(T,) row index of each text's image.

    Args:
        text_image_ids: (T,) the image id of each text; the row index itself when `image_ids` is None.
        image_ids: (I,) unique id of each image row, or None.
        num_images: I.

    Raises:
        ValueError: duplicate image ids, a text whose image is not among them, or a length mismatch.
    """
    wanted = np.asarray(text_image_ids).reshape(-1)
    if wanted.size and not np.issubdtype(wanted.dtype, np.integer):
        raise ValueError(f"text_image_ids must be integers, got dtype {wanted.dtype}")
    wanted = wanted.astype(np.int64)
    ids = np.arange(num_images, dtype=np.int64) if image_ids is None else np.asarray(image_ids, dtype=np.int64)
    if ids.shape != (num_images,):
        raise ValueError(f"image_ids has {ids.size} entries for {num_images} images")
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    duplicated = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
    if duplicated.size:
        raise ValueError(f"image id {int(duplicated[0])} appears more than once in image_ids")
    pos = np.clip(np.searchsorted(sorted_ids, wanted), 0, max(num_images - 1, 0))
    missing = (sorted_ids[pos] != wanted) if num_images else np.ones(wanted.shape, dtype=bool)
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise ValueError(f"text {first} belongs to image id {int(wanted[first])}, which is not among the image ids")
    return order[pos]  # (T,)


def recall_metrics(i2t_ranks: np.ndarray, t2i_ranks: np.ndarray, i2t_ties: int, t2i_ties: int) -> dict[str, float]:
    """0-based ranks (I,), (T,) and tie counts → the metrics dict (percent, Python floats)."""
    metrics: dict[str, float] = {}
    for name, ranks in (("i2t", i2t_ranks), ("t2i", t2i_ranks)):
        for k in KS:
            metrics[f"{name}_r{k}"] = 100.0 * int(np.count_nonzero(ranks < k)) / len(ranks)
    metrics["rsum"] = sum(metrics[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in KS)
    metrics["r_mean"] = metrics["rsum"] / 6
    metrics["i2t_ties"], metrics["t2i_ties"] = float(i2t_ties), float(t2i_ties)
    return metrics


def _as_array(values, name: str, ndim: int) -> np.ndarray:
    """numpy array (no copy when possible) from numpy / torch / nested lists; real numbers only, no NaN."""
    if hasattr(values, "detach"):  # torch tensor: read its storage without importing torch here
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if array.dtype.kind not in "iuf":  # signed, unsigned, floating
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def _check_no_nan(block: np.ndarray, name: str) -> None:
    if np.issubdtype(block.dtype, np.floating) and np.isnan(block).any():
        raise ValueError(f"{name} contains NaN")


# ------------------------------------------------------------------------------------------- full matrix
def retrieval_recall(
    scores,
    text_image_ids: Sequence[int],
    image_ids: Sequence[int] | None = None,
    *,
    pessimistic: bool = False,
    chunk_size: int | None = None,
) -> dict[str, float]:
    """Recall@1/5/10 both ways, `rsum`, `r_mean` and the tie counts from a full score matrix.

    Args:
        scores: (num_images, num_texts) similarity, higher = better (numpy or torch; any real dtype, compared as
            given; NaN is an error, ±inf is allowed, e.g. as a filler for pairs that were not scored).
        text_image_ids: (num_texts,) the image each text belongs to: an id from `image_ids`, or, when `image_ids`
            is None, the row index of its image.
        image_ids: (num_images,) the unique id of each row.
        pessimistic: count candidates tied with the ground truth as ranked above it (default: below).
        chunk_size: rows compared at once (default: about 4M entries per chunk).

    Returns:
        `i2t_r1 i2t_r5 i2t_r10 t2i_r1 t2i_r5 t2i_r10 rsum r_mean` (percent) and `i2t_ties t2i_ties` (counts).
    """
    scores = _as_array(scores, "scores", 2)
    num_images, num_texts = scores.shape
    if num_images == 0 or num_texts == 0:
        raise ValueError(f"scores must have at least one image and one text, got shape {scores.shape}")
    if len(text_image_ids) != num_texts:
        raise ValueError(f"{len(text_image_ids)} text_image_ids for {num_texts} score columns")
    gt_rows = ground_truth_rows(text_image_ids, image_ids, num_images)  # (T,)
    gt_scores = scores[gt_rows, np.arange(num_texts)]  # (T,) each text's score with its own image
    _check_no_nan(gt_scores, "scores")
    best, has_text, gt_at_best = _best_caption(gt_scores, gt_rows, num_images)
    rows = chunk_size or max(1, _CHUNK_ELEMENTS // num_texts)
    t2i_higher = np.zeros(num_texts, dtype=np.int64)
    t2i_equal = np.zeros(num_texts, dtype=np.int64)  # includes the ground truth itself
    i2t_higher = np.empty(num_images, dtype=np.int64)
    i2t_equal = np.empty(num_images, dtype=np.int64)  # includes ground-truth captions scoring `best`
    for start in range(0, num_images, rows):
        block = scores[start : start + rows]  # (R, T), a view
        _check_no_nan(block, "scores")
        t2i_higher += np.count_nonzero(block > gt_scores[None, :], axis=0)
        t2i_equal += np.count_nonzero(block == gt_scores[None, :], axis=0)
        row_best = best[start : start + rows, None]  # (R, 1)
        i2t_higher[start : start + rows] = np.count_nonzero(block > row_best, axis=1)
        i2t_equal[start : start + rows] = np.count_nonzero(block == row_best, axis=1)
    t2i_tied = t2i_equal - 1  # (T,) other images scoring exactly the ground truth's score
    i2t_tied = np.where(has_text, i2t_equal - gt_at_best, 0)  # (I,) other texts scoring exactly `best`
    t2i_ranks = t2i_higher + t2i_tied if pessimistic else t2i_higher
    i2t_ranks = i2t_higher + i2t_tied if pessimistic else i2t_higher
    i2t_ranks = np.where(has_text, i2t_ranks, MISS)  # an image without captions never hits
    return recall_metrics(i2t_ranks, t2i_ranks, int(np.count_nonzero(i2t_tied)), int(np.count_nonzero(t2i_tied)))


def _best_caption(
    gt_scores: np.ndarray, gt_rows: np.ndarray, num_images: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: the best score among its captions (I,), whether it has any (I,) bool, how many captions score
    exactly that best (I,). Images without captions get a placeholder best (their rank is overridden)."""
    order = np.argsort(gt_rows, kind="stable")
    grouped_rows, grouped = gt_rows[order], gt_scores[order]  # (T,) texts grouped by image row
    starts = np.flatnonzero(np.r_[True, grouped_rows[1:] != grouped_rows[:-1]])  # (U,) first text of each image
    present = grouped_rows[starts]  # (U,) image rows that have captions
    best = np.zeros(num_images, dtype=gt_scores.dtype)
    best[present] = np.maximum.reduceat(grouped, starts)
    has_text = np.zeros(num_images, dtype=bool)
    has_text[present] = True
    gt_at_best = np.bincount(gt_rows[gt_scores == best[gt_rows]], minlength=num_images)  # (I,)
    return best, has_text, gt_at_best


# ------------------------------------------------------------------------------------------- COCO 1K folds
def fold_recall(
    scores,
    text_image_ids: Sequence[int],
    image_ids: Sequence[int] | None = None,
    folds: int = 5,
    *,
    pessimistic: bool = False,
) -> dict[str, float]:
    """The COCO 1K protocol (VSE++ `evaluation.py:evalrank(fold5=True)`): the images (rows, in the given order)
    are split into `folds` equal consecutive folds; each fold is scored on its images and the texts of those
    images only; every key (recalls, `rsum`, `r_mean`, and the tie counts too) is the mean over folds, like
    VSE++'s `np.array(results).mean(axis=0)`.

    Raises:
        ValueError: the number of images is not a multiple of `folds` (COCO 5K test → 5 × 1,000), `folds` < 1.
    """
    scores = _as_array(scores, "scores", 2)
    num_images, num_texts = scores.shape
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    if num_images % folds:
        raise ValueError(f"{num_images} images cannot be split into {folds} equal folds (COCO 1K: 5,000 = 5 × 1,000)")
    if len(text_image_ids) != num_texts:
        raise ValueError(f"{len(text_image_ids)} text_image_ids for {num_texts} score columns")
    gt_rows = ground_truth_rows(text_image_ids, image_ids, num_images)  # (T,)
    size = num_images // folds
    per_fold = []
    for fold in range(folds):
        rows = np.arange(fold * size, (fold + 1) * size)  # (size,)
        cols = np.flatnonzero((gt_rows >= rows[0]) & (gt_rows <= rows[-1]))  # (T_f,) texts of these images, in order
        if cols.size == 0:
            raise ValueError(f"fold {fold} (image rows {rows[0]}..{rows[-1]}) has no texts")
        sub = scores[rows[0] : rows[-1] + 1][:, cols]  # (size, T_f)
        per_fold.append(retrieval_recall(sub, gt_rows[cols] - rows[0], pessimistic=pessimistic))
    return mean_over_folds(per_fold)


def mean_over_folds(per_fold: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean of every key over the folds' metric dicts (VSE++'s `np.array(results).mean(axis=0)`), as floats."""
    return {key: sum(m[key] for m in per_fold) / len(per_fold) for key in per_fold[0]}


# ------------------------------------------------------------------------------------------- top-K lists
def topk_recall(
    i2t_scores,
    i2t_indices,
    t2i_scores,
    t2i_indices,
    text_image_ids: Sequence[int],
    image_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """The `retrieval_recall` metrics from per-query candidate lists (a faiss search, a re-ranked shortlist).

    A ground truth that is not in its query's list is a miss. Within a list, rank = the number of listed
    candidates scoring strictly higher than the best listed ground truth, so the lists need not be sorted. When
    each list is the exact top-K (K >= 10) of a full matrix without ties, the result equals `retrieval_recall` on
    that matrix: anything left out scores at most the K-th score, hence never strictly above a listed ground truth.
    Ties are only seen inside the lists (`*_ties` counts queries whose best listed ground truth shares its score
    with another listed candidate). There is no pessimistic variant: whether unlisted candidates tie with a
    ground truth at the K-th score cannot be known from the lists.

    Args:
        i2t_scores, i2t_indices: (num_images, K) scores and text columns (0..num_texts-1; -1 = empty slot).
        t2i_scores, t2i_indices: (num_texts, K') scores and image rows (0..num_images-1; -1 = empty slot).
        text_image_ids: (num_texts,) the image of each text (an id from `image_ids`, or a row index).
        image_ids: (num_images,) unique image ids, or None (rows are their own ids).

    Raises:
        ValueError: shapes that do not match, indices out of range or repeated in a list, NaN scores, or lists
            narrower than 10 while the gallery has more than that (R@10 would be undercounted).
    """
    num_texts = len(text_image_ids)
    i2t_scores, i2t_indices = _check_lists(i2t_scores, i2t_indices, num_texts, "i2t")
    num_images = i2t_scores.shape[0]
    t2i_scores, t2i_indices = _check_lists(t2i_scores, t2i_indices, num_images, "t2i")
    if t2i_scores.shape[0] != num_texts:
        raise ValueError(f"t2i lists have {t2i_scores.shape[0]} rows for {num_texts} texts")
    gt_rows = ground_truth_rows(text_image_ids, image_ids, num_images)  # (T,)
    text_rows = np.append(gt_rows, -1)  # (T+1,) so that index -1 (empty slot) maps to no image
    i2t_gt = text_rows[i2t_indices] == np.arange(num_images)[:, None]  # (I, K)
    t2i_gt = (t2i_indices == gt_rows[:, None]) & (t2i_indices >= 0)  # (T, K')
    i2t_ranks, i2t_ties = _list_ranks(i2t_scores, i2t_indices >= 0, i2t_gt)
    t2i_ranks, t2i_ties = _list_ranks(t2i_scores, t2i_indices >= 0, t2i_gt)
    return recall_metrics(i2t_ranks, t2i_ranks, i2t_ties, t2i_ties)


def _check_lists(scores, indices, num_candidates: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    scores = _as_array(scores, f"{name}_scores", 2)
    indices = _as_array(indices, f"{name}_indices", 2)
    if not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"{name}_indices must be integers, got dtype {indices.dtype}")
    if scores.shape != indices.shape:
        raise ValueError(f"{name}_scores {scores.shape} and {name}_indices {indices.shape} differ in shape")
    if scores.shape[0] == 0:
        raise ValueError(f"{name} lists are empty")
    _check_no_nan(scores, f"{name}_scores")
    width = scores.shape[1]
    if width < max(KS) and width < num_candidates:
        raise ValueError(f"{name} lists hold {width} candidates; R@{max(KS)} needs at least {max(KS)}")
    indices = indices.astype(np.int64, copy=False)
    if indices.size and (indices.min() < -1 or indices.max() >= num_candidates):
        raise ValueError(f"{name}_indices must lie in [-1, {num_candidates}) (-1 = empty slot)")
    ordered = np.sort(indices, axis=1)
    if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)):
        raise ValueError(f"{name}_indices repeat a candidate within one list")
    return scores, indices


def _list_ranks(scores: np.ndarray, valid: np.ndarray, is_gt: np.ndarray) -> tuple[np.ndarray, int]:
    """(Q, K) scores, valid-slot mask, ground-truth mask → (Q,) 0-based ranks (`MISS` when no ground truth is
    listed) and the number of tied queries."""
    values = scores.astype(np.float64, copy=False)  # exact for float32 and for integers below 2**53
    has_gt = is_gt.any(axis=1)  # (Q,)
    best = np.where(is_gt, values, -np.inf).max(axis=1, initial=-np.inf)[:, None]  # (Q, 1)
    higher = np.count_nonzero(valid & (values > best), axis=1)  # (Q,)
    tied = has_gt & np.any(valid & ~is_gt & (values == best), axis=1)  # (Q,)
    return np.where(has_gt, higher, MISS), int(np.count_nonzero(tied))
