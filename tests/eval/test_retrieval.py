"""Retrieval recall from a full score matrix and COCO 1K folds, against plain loops: unequal captions per image (7 and
1 included), random image ids, texts in shuffled order, integer scores for ties, a hand-checked case."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlkd_cli.eval.retrieval import fold_recall, retrieval_recall

KEYS = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum", "r_mean", "i2t_ties", "t2i_ties"]


# ------------------------------------------------------------------------------------------- brute force
def brute_recall(scores, text_image_ids, image_ids, pessimistic=False) -> dict[str, float]:
    """The protocol written as loops: rank = #other candidates scoring higher (or equal, if pessimistic)."""
    num_images, num_texts = len(scores), len(scores[0])
    i2t_ranks, t2i_ranks, i2t_ties, t2i_ties = [], [], 0, 0
    for i in range(num_images):
        mine = [t for t in range(num_texts) if text_image_ids[t] == image_ids[i]]
        if not mine:
            i2t_ranks.append(float("inf"))
            continue
        best = max(scores[i][t] for t in mine)
        higher = sum(1 for t in range(num_texts) if scores[i][t] > best)
        tied = sum(1 for t in range(num_texts) if t not in mine and scores[i][t] == best)
        i2t_ranks.append(higher + tied if pessimistic else higher)
        i2t_ties += tied > 0
    for t in range(num_texts):
        gt = image_ids.index(text_image_ids[t])
        higher = sum(1 for i in range(num_images) if scores[i][t] > scores[gt][t])
        tied = sum(1 for i in range(num_images) if i != gt and scores[i][t] == scores[gt][t])
        t2i_ranks.append(higher + tied if pessimistic else higher)
        t2i_ties += tied > 0
    out = {}
    for name, ranks in (("i2t", i2t_ranks), ("t2i", t2i_ranks)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = 100.0 * sum(1 for r in ranks if r < k) / len(ranks)
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10))
    out["r_mean"] = out["rsum"] / 6
    out["i2t_ties"], out["t2i_ties"] = float(i2t_ties), float(t2i_ties)
    return out


def random_case(seed: int, num_images: int = 23, integer: bool = False):
    """Scores (I, T), text_image_ids (T,) in shuffled order, image_ids (I,) random; captions 7, 1, then 0..6."""
    rng = np.random.default_rng(seed)
    image_ids = [int(i) for i in rng.choice(10**7, size=num_images, replace=False)]
    counts = [7, 1, *rng.integers(2, 7, size=num_images - 2)]
    text_image_ids = [image_ids[i] for i, c in enumerate(counts) for _ in range(c)]
    text_image_ids = [text_image_ids[j] for j in rng.permutation(len(text_image_ids))]
    match = np.array([[tid == iid for tid in text_image_ids] for iid in image_ids])  # (I, T)
    if integer:
        scores = rng.integers(0, 6, size=match.shape) + 2 * match  # many ties
    else:
        scores = (rng.standard_normal(match.shape) + 1.5 * match).astype(np.float32)
    return scores, text_image_ids, image_ids


# ------------------------------------------------------------------------------------------- full matrix
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk_size", [None, 1, 4])
def test_float_scores_equal_brute_force(seed: int, chunk_size: int | None) -> None:
    scores, text_image_ids, image_ids = random_case(seed)
    got = retrieval_recall(scores, text_image_ids, image_ids, chunk_size=chunk_size)
    want = brute_recall(scores.tolist(), text_image_ids, image_ids)
    assert list(got) == KEYS
    assert got == want
    assert all(type(v) is float for v in got.values())
    assert 0 < got["i2t_r1"] < 100 and 0 < got["t2i_r1"] < 100  # mid-range: the case discriminates


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pessimistic", [False, True])
def test_integer_scores_with_ties_equal_brute_force(seed: int, pessimistic: bool) -> None:
    scores, text_image_ids, image_ids = random_case(seed, integer=True)
    got = retrieval_recall(scores, text_image_ids, image_ids, pessimistic=pessimistic, chunk_size=5)
    assert got == brute_recall(scores.tolist(), text_image_ids, image_ids, pessimistic=pessimistic)
    assert got["i2t_ties"] > 0 and got["t2i_ties"] > 0


def test_ties_change_the_result_between_conventions() -> None:
    scores, text_image_ids, image_ids = random_case(0, integer=True)
    optimistic = retrieval_recall(scores, text_image_ids, image_ids)
    pessimistic = retrieval_recall(scores, text_image_ids, image_ids, pessimistic=True)
    assert pessimistic["rsum"] < optimistic["rsum"]
    assert pessimistic["i2t_ties"] == optimistic["i2t_ties"]


def test_hand_checked_case() -> None:
    # images 70 (2 captions), 50 (1 caption), 90 (1 caption); texts in the order b0 a0 c0 a1
    image_ids = [70, 50, 90]
    text_image_ids = [50, 70, 90, 70]
    scores = np.array(
        [
            [0.9, 0.2, 0.1, 0.5],  # image 70: best own caption 0.5 (a1), one text above it -> rank 1
            [0.8, 0.3, 0.9, 0.0],  # image 50: own caption 0.8, 0.9 above -> rank 1
            [0.1, 0.1, 0.1, 0.1],  # image 90: own caption 0.1 tied with three others -> rank 0, a tie
        ],
        dtype=np.float32,
    )
    # t2i: b0 -> col 0, gt image 50 (0.8) < 0.9 -> rank 1; a0 -> col 1, gt 70 (0.2) < 0.3 -> rank 1;
    # c0 -> col 2, gt 90 (0.1) = image 70's 0.1, 0.9 above -> rank 1, tie; a1 -> col 3, gt 70 (0.5) -> rank 0.
    got = retrieval_recall(scores, text_image_ids, image_ids)
    assert got["i2t_r1"] == 100 / 3 and got["i2t_r5"] == 100.0
    assert got["t2i_r1"] == 25.0 and got["t2i_r5"] == 100.0
    assert got["rsum"] == 100 / 3 + 100 + 100 + 25 + 100 + 100
    assert got["i2t_ties"] == 1.0 and got["t2i_ties"] == 1.0
    worst = retrieval_recall(scores, text_image_ids, image_ids, pessimistic=True)
    assert worst["i2t_r1"] == 0.0 and worst["t2i_r1"] == 25.0  # image 90 drops to rank 3; c0 to rank 2


def test_image_without_captions_is_a_miss() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [1.0, 1.0]], dtype=np.float32)  # 2 texts: fewer than 10
    got = retrieval_recall(scores, [11, 12], [11, 12, 13])
    assert got == brute_recall(scores.tolist(), [11, 12], [11, 12, 13])
    assert got["i2t_r10"] == 200 / 3  # image 13 counts in the denominator and never hits
    assert got["t2i_r1"] == 0.0  # image 13 outscores both


def test_float32_compared_as_given() -> None:
    """One ulp apart in float32 is not a tie, in either direction (nothing is rounded, e.g. to float16)."""
    a = np.float32(0.1)
    b = np.nextafter(a, np.float32(1))
    scores = np.array([[a, b], [b, a]], dtype=np.float32)  # text 0 -> image 0, text 1 -> image 1
    got = retrieval_recall(scores, [0, 1])
    assert got["i2t_r1"] == 0.0 and got["t2i_r1"] == 0.0
    assert got["i2t_ties"] == 0.0 and got["t2i_ties"] == 0.0
    c = 0.1 + 1e-17  # distinct from 0.1 only in float64: must not be rounded to float32
    assert retrieval_recall(np.array([[0.1, c], [c, 0.1]]), [0, 1])["i2t_ties"] == 0.0
    assert retrieval_recall(np.array([[0.1, c], [c, 0.1]], dtype=np.float32), [0, 1])["i2t_ties"] == 2.0


def test_torch_and_positional_image_ids() -> None:
    scores, text_image_ids, image_ids = random_case(3)
    want = retrieval_recall(scores, text_image_ids, image_ids)
    assert retrieval_recall(torch.from_numpy(scores), torch.tensor(text_image_ids), image_ids) == want
    rows = [image_ids.index(t) for t in text_image_ids]
    assert retrieval_recall(scores, rows) == want  # without image_ids, texts name their row


def test_infinite_filler_is_allowed() -> None:
    scores, text_image_ids, image_ids = random_case(4)
    filled = np.where(scores < 0.5, -np.inf, scores).astype(np.float32)
    assert retrieval_recall(filled, text_image_ids, image_ids) == brute_recall(
        filled.tolist(), text_image_ids, image_ids
    )


@pytest.mark.parametrize(
    ("scores", "text_ids", "image_ids", "message"),
    [
        (np.zeros((2, 2)), [1, 3], [1, 2], "image id 3"),
        (np.zeros((2, 2)), [1, 1], [1, 1], "more than once"),
        (np.zeros((2, 3)), [1, 2], [1, 2], "3 score columns"),
        (np.array([[0.0, np.nan], [0.0, 0.0]]), [1, 2], [1, 2], "NaN"),
        (np.zeros(3), [0, 0, 0], None, "2 dimensions"),
        (np.zeros((0, 2)), [0, 0], None, "at least one image"),
        (np.zeros((2, 2), dtype=bool), [0, 1], None, "real numbers"),
    ],
)
def test_bad_input(scores, text_ids, image_ids, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        retrieval_recall(scores, text_ids, image_ids)


def test_large_matrix_chunks_agree() -> None:
    rng = np.random.default_rng(9)
    scores = rng.standard_normal((400, 2000)).astype(np.float32)
    text_rows = np.repeat(np.arange(400), 5)
    scores[text_rows, np.arange(2000)] += 2.5
    full = retrieval_recall(scores, text_rows, chunk_size=400)
    assert retrieval_recall(scores, text_rows) == full == retrieval_recall(scores, text_rows, chunk_size=7)
    assert 0 < full["t2i_r1"] < 100


# ------------------------------------------------------------------------------------------- COCO 1K folds
def test_fold_recall_by_hand() -> None:
    # 4 images (ids 8, 3, 5, 1) in 2 folds: {8, 3} and {5, 1}; texts t0..t4 belong to 3, 8, 1, 5, 8
    image_ids = [8, 3, 5, 1]
    text_image_ids = [3, 8, 1, 5, 8]
    scores = np.array(
        [
            # t0    t1    t2    t3    t4
            [0.9, 0.1, 0.0, 0.0, 0.2],  # 8
            [0.5, 0.3, 0.0, 0.0, 0.8],  # 3
            [0.0, 0.0, 0.7, 0.1, 0.0],  # 5
            [0.65, 0.0, 0.6, 0.4, 0.0],  # 1 (0.65: t0 of the other fold)
        ],
        dtype=np.float32,
    )
    # fold 0 (rows 8, 3; texts t0 t1 t4): i2t: 8's best own 0.2 < 0.9 -> rank 1; 3's own 0.5 < 0.8 -> rank 1
    #   -> i2t_r1 0, r5 100; t2i: t0 (gt 3: 0.5 < 0.9) rank 1; t1 (gt 8: 0.1 < 0.3) rank 1; t4 (gt 8: 0.2 < 0.8)
    #   rank 1 -> t2i_r1 0, r5 100.
    # fold 1 (rows 5, 1; texts t2 t3): i2t: 5's own t3 0.1 < 0.7 -> rank 1; 1's own t2 0.6 top -> rank 0 -> r1 50;
    #   t2i: t2 (gt 1: 0.6 < 0.7) rank 1; t3 (gt 5: 0.1 < 0.4) rank 1 -> r1 0.
    got = fold_recall(scores, text_image_ids, image_ids, folds=2)
    assert got["i2t_r1"] == (0 + 50) / 2 and got["i2t_r5"] == 100.0
    assert got["t2i_r1"] == 0.0 and got["t2i_r10"] == 100.0
    assert got["rsum"] == pytest.approx(25 + 100 + 100 + 0 + 100 + 100)
    whole = retrieval_recall(scores, text_image_ids, image_ids)
    assert whole["i2t_r1"] == 0.0  # in the full gallery, t0 (other fold) outscores image 1's own caption


@pytest.mark.parametrize("seed", range(3))
def test_fold_recall_is_the_mean_of_brute_force_folds(seed: int) -> None:
    scores, text_image_ids, image_ids = random_case(seed, num_images=24)
    got = fold_recall(scores, text_image_ids, image_ids, folds=3)
    per_fold = []
    for fold in range(3):
        fold_images = image_ids[fold * 8 : (fold + 1) * 8]
        cols = [t for t, iid in enumerate(text_image_ids) if iid in fold_images]
        sub = [[scores[image_ids.index(i)][t] for t in cols] for i in fold_images]
        per_fold.append(brute_recall(sub, [text_image_ids[t] for t in cols], fold_images))
    for key in KEYS:
        assert got[key] == pytest.approx(sum(m[key] for m in per_fold) / 3, abs=1e-12)
    assert fold_recall(scores, text_image_ids, image_ids, folds=1) == retrieval_recall(
        scores, text_image_ids, image_ids
    )


def test_fold_recall_needs_equal_folds() -> None:
    scores, text_image_ids, image_ids = random_case(0, num_images=23)
    with pytest.raises(ValueError, match="23 images cannot be split into 5 equal folds"):
        fold_recall(scores, text_image_ids, image_ids, folds=5)
    with pytest.raises(ValueError, match="folds must be >= 1"):
        fold_recall(scores, text_image_ids, image_ids, folds=0)
