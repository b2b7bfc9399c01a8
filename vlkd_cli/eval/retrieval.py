"""Image-text retrieval recall, the standard protocol (VSE++ / ALBEF / METER):

- image→text (i2t): an image scores a hit at K if ANY of its captions ranks in the top K of all texts;
- text→image (t2i): a text scores a hit at K if its single ground-truth image ranks in the top K of all images;
- rank = the number of candidates scoring STRICTLY higher than the best ground truth (so ties favour the ground
  truth; the number of queries whose ground truth is tied with another candidate is reported separately).

Recalls are percentages computed as Python floats, `100 * hits / n`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KS = (1, 5, 10)


def retrieval_recall(
    scores: np.ndarray, text_image_ids: Sequence[int], image_ids: Sequence[int] | None = None
) -> dict[str, float]:
    """Recall@1/5/10 both ways, `rsum` and `r_mean`.

    Args:
        scores: (num_images, num_texts) similarity, higher = better.
        text_image_ids: (num_texts,) the image each text belongs to: an id from `image_ids`, or, when
            `image_ids` is None, the row index of its image.
        image_ids: (num_images,) the id of each row.
    """
    scores = np.asarray(scores, dtype=np.float64)
    num_images, num_texts = scores.shape
    ids = np.arange(num_images) if image_ids is None else np.asarray(image_ids, dtype=np.int64)
    row_of = {int(i): r for r, i in enumerate(ids)}
    gt_rows = np.array([row_of[int(i)] for i in text_image_ids], dtype=np.int64)  # (T,)
    t2i_ranks, t2i_ties = _t2i_ranks(scores, gt_rows)
    i2t_ranks, i2t_ties = _i2t_ranks(scores, gt_rows)
    metrics = {}
    for name, ranks in (("i2t", i2t_ranks), ("t2i", t2i_ranks)):
        for k in KS:
            metrics[f"{name}_r{k}"] = 100.0 * int((ranks < k).sum()) / len(ranks)
    metrics["rsum"] = sum(metrics[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in KS)
    metrics["r_mean"] = metrics["rsum"] / 6
    metrics["i2t_ties"], metrics["t2i_ties"] = float(i2t_ties), float(t2i_ties)
    return metrics


def _t2i_ranks(scores: np.ndarray, gt_rows: np.ndarray) -> tuple[np.ndarray, int]:
    columns = np.arange(scores.shape[1])
    gt = scores[gt_rows, columns]  # (T,)
    higher = (scores > gt[None, :]).sum(axis=0)
    ties = int(((scores == gt[None, :]).sum(axis=0) > 1).sum())
    return higher, ties


def _i2t_ranks(scores: np.ndarray, gt_rows: np.ndarray) -> tuple[np.ndarray, int]:
    ranks = np.empty(scores.shape[0], dtype=np.int64)
    ties = 0
    for row in range(scores.shape[0]):
        mine = gt_rows == row
        if not mine.any():
            ranks[row] = scores.shape[1]  # an image without captions can never hit
            continue
        best = scores[row, mine].max()
        ranks[row] = int((scores[row] > best).sum())
        ties += int((scores[row, ~mine] == best).any())
    return ranks, ties
