"""Two-stage re-ranking: recall equals brute force over the shortlisted pairs only (ALBEF/BLIP k_test: every other
pair ranks last), each distinct pair is scored exactly once, in bounded batches."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlkd_cli.eval.gallery import search, topk_recall
from vlkd_cli.eval.rerank import rerank

K = 12


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def case(seed: int, num_images: int = 30):
    """Embeddings (noisy first stage), random ids, captions per image 7, 1, then 2..6 in shuffled order."""
    rng = np.random.default_rng(seed)
    image_ids = rng.choice(10**6, size=num_images, replace=False)
    counts = np.array([7, 1, *rng.integers(2, 7, size=num_images - 2)])
    rows = rng.permutation(np.repeat(np.arange(num_images), counts))  # (T,) image row of each text
    images = rng.standard_normal((num_images, 8))
    texts = images[rows] + 1.5 * rng.standard_normal((len(rows), 8))
    return normalise(images), normalise(texts), rows, image_ids[rows], image_ids


def cross_encoder(rows_of_text: np.ndarray):
    """A known function of (image row, text column): matching pairs score higher, others pseudo-random."""

    def f(i: int, t: int) -> float:
        return math.sin(12.9898 * i + 78.233 * t) + (1.2 if rows_of_text[t] == i else 0.0)

    return f


def brute_two_stage(i2t_candidates, t2i_candidates, f, text_image_ids, image_ids, first=None, weight=0.0):
    """ALBEF's scheme as loops: an i2t matrix and a t2i matrix, f on the shortlisted pairs, -inf elsewhere."""
    num_images, num_texts = len(image_ids), len(text_image_ids)
    i2t = [[-math.inf] * num_texts for _ in range(num_images)]
    t2i = [[-math.inf] * num_texts for _ in range(num_images)]
    for i, row in enumerate(i2t_candidates):
        for slot, t in enumerate(row):
            i2t[i][t] = f(i, t) + (weight * first[0][i][slot] if weight else 0.0)
    for t, row in enumerate(t2i_candidates):
        for slot, i in enumerate(row):
            t2i[i][t] = f(i, t) + (weight * first[1][t][slot] if weight else 0.0)
    out = {}
    i2t_ranks = []
    for i in range(num_images):
        best = max(i2t[i][t] for t in range(num_texts) if text_image_ids[t] == image_ids[i])
        i2t_ranks.append(math.inf if best == -math.inf else sum(1 for t in range(num_texts) if i2t[i][t] > best))
    t2i_ranks = []
    for t in range(num_texts):
        gt = list(image_ids).index(text_image_ids[t])
        own = t2i[gt][t]
        t2i_ranks.append(math.inf if own == -math.inf else sum(1 for i in range(num_images) if t2i[i][t] > own))
    for name, ranks in (("i2t", i2t_ranks), ("t2i", t2i_ranks)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = 100.0 * sum(1 for r in ranks if r < k) / len(ranks)
    return out


class Recorder:
    """The callback: records every pair and batch it is asked to score."""

    def __init__(self, f) -> None:
        self.f, self.pairs, self.batches = f, [], []

    def __call__(self, image_rows: np.ndarray, text_cols: np.ndarray) -> np.ndarray:
        assert image_rows.dtype == np.int64 and text_cols.dtype == np.int64
        self.batches.append(len(image_rows))
        self.pairs += list(zip(image_rows.tolist(), text_cols.tolist()))
        return np.array([self.f(i, t) for i, t in zip(image_rows.tolist(), text_cols.tolist())])


@pytest.mark.parametrize("seed", range(4))
def test_rerank_equals_brute_force_on_the_candidates(seed: int) -> None:
    images, texts, rows, text_image_ids, image_ids = case(seed)
    i2t, t2i = search(images, texts, K), search(texts, images, K)
    f = cross_encoder(rows)
    scorer = Recorder(f)
    (i2t_s, i2t_i), (t2i_s, t2i_i) = rerank(i2t[1], t2i[1], scorer, batch_size=50)
    got = topk_recall(i2t_s, i2t_i, t2i_s, t2i_i, text_image_ids, image_ids)
    want = brute_two_stage(i2t[1].tolist(), t2i[1].tolist(), f, list(text_image_ids), list(image_ids))
    assert {key: got[key] for key in want} == want
    first_stage = topk_recall(*i2t, *t2i, text_image_ids, image_ids)
    assert got["rsum"] != first_stage["rsum"]  # re-ranking changed the outcome: the comparison is not vacuous
    assert 0 < want["t2i_r1"] < 100 and want["i2t_r10"] < 100  # some ground truths lie outside the shortlist


def test_each_distinct_pair_is_scored_once_in_bounded_batches() -> None:
    images, texts, rows, _, _ = case(7)
    i2t, t2i = search(images, texts, K), search(texts, images, K)
    scorer = Recorder(cross_encoder(rows))
    rerank(i2t[1], t2i[1], scorer, batch_size=64)
    shortlisted = {(i, t) for i, row in enumerate(i2t[1].tolist()) for t in row}
    shortlisted |= {(i, t) for t, row in enumerate(t2i[1].tolist()) for i in row}
    assert len(scorer.pairs) == len(set(scorer.pairs)) == len(shortlisted)
    assert set(scorer.pairs) == shortlisted
    assert len(shortlisted) < i2t[1].size + t2i[1].size  # both directions share pairs, scored once
    assert max(scorer.batches) <= 64 and len(scorer.batches) == math.ceil(len(shortlisted) / 64)
    assert [p[0] for p in scorer.pairs] == sorted(p[0] for p in scorer.pairs)  # image-major order


def test_lists_are_sorted_and_keep_their_candidates() -> None:
    images, texts, rows, _, _ = case(3)
    i2t, t2i = search(images, texts, K), search(texts, images, K)
    f = cross_encoder(rows)
    (i2t_s, i2t_i), (t2i_s, t2i_i) = rerank(i2t[1], t2i[1], Recorder(f))
    for before, scores, after in ((i2t[1], i2t_s, i2t_i), (t2i[1], t2i_s, t2i_i)):
        assert np.all(np.diff(scores, axis=1) <= 0)
        np.testing.assert_array_equal(np.sort(before, axis=1), np.sort(after, axis=1))
    assert i2t_s[2, 0] == f(2, int(i2t_i[2, 0])) and t2i_s[5, 3] == f(int(t2i_i[5, 3]), 5)


def test_first_stage_weight_is_blip_itm_plus_itc() -> None:
    images, texts, rows, text_image_ids, image_ids = case(1)
    i2t, t2i = search(images, texts, K), search(texts, images, K)
    f = cross_encoder(rows)
    (i2t_s, i2t_i), (t2i_s, t2i_i) = rerank(
        i2t[1], t2i[1], Recorder(f), i2t_scores=i2t[0], t2i_scores=t2i[0], first_stage_weight=1.0
    )
    got = topk_recall(i2t_s, i2t_i, t2i_s, t2i_i, text_image_ids, image_ids)
    first = (i2t[0].tolist(), t2i[0].tolist())
    want = brute_two_stage(i2t[1].tolist(), t2i[1].tolist(), f, list(text_image_ids), list(image_ids), first, 1.0)
    assert {key: got[key] for key in want} == want
    with pytest.raises(ValueError, match="needs i2t_scores"):
        rerank(i2t[1], t2i[1], Recorder(f), first_stage_weight=1.0)


def test_empty_slots_stay_last_and_are_not_scored() -> None:
    i2t = np.array([[1, -1], [0, 2]])  # 2 images, 3 texts
    t2i = np.array([[0, -1], [1, 0], [-1, -1]])
    scorer = Recorder(lambda i, t: float(10 * i + t))
    (i2t_s, i2t_i), (t2i_s, t2i_i) = rerank(i2t, t2i, scorer)
    assert sorted(scorer.pairs) == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    np.testing.assert_array_equal(i2t_i, [[1, -1], [2, 0]])
    np.testing.assert_array_equal(i2t_s, [[1.0, -np.inf], [12.0, 10.0]])
    np.testing.assert_array_equal(t2i_i, [[0, -1], [1, 0], [-1, -1]])
    assert np.isneginf(t2i_s[2]).all()


@pytest.mark.parametrize(
    ("callback", "message"),
    [
        (lambda rows, cols: np.zeros(len(rows) + 1), "returned shape"),
        (lambda rows, cols: np.full(len(rows), np.nan), "NaN"),
        (lambda rows, cols: np.array(["a"] * len(rows)), "dtype"),
    ],
)
def test_bad_callback_output(callback, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rerank(np.array([[0, 1]]), np.array([[0], [0]]), callback)


def test_bad_shortlists() -> None:
    ok = Recorder(lambda i, t: 0.0)
    with pytest.raises(ValueError, match="in \\[-1, 2\\)"):
        rerank(np.array([[0, 2]]), np.array([[0], [0]]), ok)
    with pytest.raises(ValueError, match="repeat"):
        rerank(np.array([[1, 1]]), np.array([[0], [0]]), ok)
    with pytest.raises(ValueError, match="integer"):
        rerank(np.array([[0.0, 1.0]]), np.array([[0], [0]]), ok)
