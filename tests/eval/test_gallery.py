"""faiss galleries and recall from top-K lists: flat search is exact and its top-10 gives the full-matrix recall;
IVF/HNSW keep >= 95 % of flat R@10 on 20,000 clustered vectors; lists with ties and misses against plain loops."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vlkd_cli.eval.gallery import build_index, default_nlist, search, search_index, topk_recall, tune
from vlkd_cli.eval.retrieval import retrieval_recall


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def paired_embeddings(seed: int, num_images: int = 40, dim: int = 16, noise: float = 1.2):
    """Image (I, D) and text (T, D) embeddings, captions per image 7, 1, then 2..6, texts shuffled, random ids."""
    rng = np.random.default_rng(seed)
    image_ids = rng.choice(10**7, size=num_images, replace=False)
    counts = np.array([7, 1, *rng.integers(2, 7, size=num_images - 2)])
    rows = rng.permutation(np.repeat(np.arange(num_images), counts))  # (T,) image row of each text
    images = rng.standard_normal((num_images, dim))
    texts = images[rows] + noise * rng.standard_normal((len(rows), dim))
    return normalise(images), normalise(texts), image_ids[rows], image_ids


def clustered(num_images: int = 4000, captions: int = 5, dim: int = 64, seed: int = 0, noise: float = 1.6):
    """Images around 100 cluster centres, `captions` noisy texts each: 20,000 texts, R@10 well below 100."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((100, dim))
    images = centres[rng.integers(100, size=num_images)] + 0.5 * rng.standard_normal((num_images, dim))
    scale = np.linalg.norm(images, axis=1, keepdims=True) / np.sqrt(dim)
    texts = np.repeat(images + 0, captions, axis=0)
    texts += noise * np.repeat(scale, captions, axis=0) * rng.standard_normal(texts.shape)
    return normalise(images), normalise(texts), np.repeat(np.arange(num_images), captions)


# ------------------------------------------------------------------------------------------- brute force
def brute_list_recall(i2t_scores, i2t_indices, t2i_scores, t2i_indices, text_image_ids, image_ids):
    """Loops: a ground truth missing from the list is a miss; rank = #listed candidates with a higher score."""

    def rank(scores, indices, is_gt):
        own = [s for s, j in zip(scores, indices) if j >= 0 and is_gt(j)]
        if not own:
            return float("inf")
        return sum(1 for s, j in zip(scores, indices) if j >= 0 and s > max(own))

    image_ids = list(image_ids)
    i2t = [
        rank(s, idx, lambda j, i=i: text_image_ids[j] == image_ids[i])
        for i, (s, idx) in enumerate(zip(i2t_scores.tolist(), i2t_indices.tolist()))
    ]
    t2i = [
        rank(s, idx, lambda j, t=t: image_ids[j] == text_image_ids[t])
        for t, (s, idx) in enumerate(zip(t2i_scores.tolist(), t2i_indices.tolist()))
    ]
    return {f"{name}_r{k}": 100.0 * sum(r < k for r in ranks) / len(ranks)
            for name, ranks in (("i2t", i2t), ("t2i", t2i)) for k in (1, 5, 10)}  # fmt: skip


def recalls(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key[4:5] == "r" and key[:3] in ("i2t", "t2i")}


# ------------------------------------------------------------------------------------------- flat = full matrix
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [10, 13])
def test_flat_topk_recall_equals_full_matrix_recall(seed: int, k: int) -> None:
    images, texts, text_image_ids, image_ids = paired_embeddings(seed)
    full = images @ texts.T  # (I, T)
    assert len(np.unique(full)) == full.size  # no ties: the statement's premise holds
    i2t, t2i = search(images, texts, k), search(texts, images, k)
    want = retrieval_recall(full, text_image_ids, image_ids)
    got = topk_recall(*i2t, *t2i, text_image_ids, image_ids)
    assert got == want
    assert 0 < want["i2t_r1"] < 100 and 0 < want["t2i_r1"] < 100 and want["t2i_r10"] < 100
    # the same from lists cut out of the very matrix (no second computation of the scores)
    order_i2t = np.argsort(-full, axis=1, kind="stable")[:, :k]
    order_t2i = np.argsort(-full.T, axis=1, kind="stable")[:, :k]
    from_matrix = topk_recall(np.take_along_axis(full, order_i2t, 1), order_i2t,
                              np.take_along_axis(full.T, order_t2i, 1), order_t2i, text_image_ids, image_ids)  # fmt: skip
    assert from_matrix == want


def test_flat_search_is_exact() -> None:
    images, texts, _, _ = paired_embeddings(5)
    scores, indices = search(texts, images, 7)
    full = texts @ images.T
    assert scores.dtype == np.float32 and indices.dtype == np.int64 and scores.shape == (len(texts), 7)
    np.testing.assert_array_equal(indices, np.argsort(-full, axis=1, kind="stable")[:, :7])
    np.testing.assert_allclose(scores, np.take_along_axis(full, indices, 1), rtol=0, atol=1e-6)
    assert np.all(np.diff(scores, axis=1) <= 0)


@pytest.mark.parametrize("seed", range(4))
def test_topk_recall_with_ties_and_misses_equals_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    _, _, text_image_ids, image_ids = paired_embeddings(seed)
    num_images, num_texts = len(image_ids), len(text_image_ids)
    # unsorted lists of 12 distinct candidates with integer scores: ties inside the lists, ground truths often absent
    i2t_indices = np.stack([rng.choice(num_texts, 12, replace=False) for _ in range(num_images)])
    t2i_indices = np.stack([rng.choice(num_images, 12, replace=False) for _ in range(num_texts)])
    i2t_scores, t2i_scores = rng.integers(0, 4, size=i2t_indices.shape), rng.integers(0, 4, size=t2i_indices.shape)
    i2t_indices[:, -1] = -1  # an empty slot per list
    got = topk_recall(i2t_scores, i2t_indices, t2i_scores, t2i_indices, text_image_ids, image_ids)
    want = brute_list_recall(i2t_scores, i2t_indices, t2i_scores, t2i_indices, text_image_ids, image_ids)
    assert recalls(got) == want
    assert got["t2i_ties"] > 0 and 0 < want["t2i_r10"] < 100


def test_tie_inside_the_list_counts_only_strictly_higher() -> None:
    # image row 0 (id 9) owns text 2; texts 1 and 2 share the top score; image 1 (id 4) owns texts 0 and 1
    i2t_scores = np.array([[5.0, 5.0, 1.0] + [0.0] * 7, [3.0, 2.0, 2.0] + [0.0] * 7])
    i2t_indices = np.array([[1, 2, 0, -1, -1, -1, -1, -1, -1, -1], [2, 0, 1, -1, -1, -1, -1, -1, -1, -1]])
    t2i_scores = np.array([[1.0, 1.0], [0.5, 0.7], [2.0, 1.0]])
    t2i_indices = np.array([[0, 1], [1, 0], [1, 0]])  # complete lists (2 images)
    got = topk_recall(i2t_scores, i2t_indices, t2i_scores, t2i_indices, [4, 4, 9], [9, 4])
    assert got["i2t_r1"] == 50.0  # image 9: rank 0 (tied with text 1); image 4: text 0 at 2.0 < 3.0 -> rank 1
    assert got["t2i_r1"] == 100 / 3  # text 0: tie -> rank 0; text 1: 0.5 < 0.7 -> 1; text 2: image 9 1.0 < 2.0 -> 1
    assert got["i2t_ties"] == 1.0 and got["t2i_ties"] == 1.0
    assert got["i2t_r5"] == 100.0 and got["t2i_r5"] == 100.0


def test_k_larger_than_gallery_pads_and_still_agrees() -> None:
    images, texts, text_image_ids, image_ids = paired_embeddings(1, num_images=6)
    t2i = search(texts, images, 10)  # only 6 images
    assert (t2i[1][:, 6:] == -1).all() and np.isneginf(t2i[0][:, 6:]).all()
    i2t = search(images, texts, 10)
    got = topk_recall(*i2t, *t2i, text_image_ids, image_ids)
    assert got == retrieval_recall(images @ texts.T, text_image_ids, image_ids)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(i2t_indices=a["i2t_indices"][:, :9], i2t_scores=a["i2t_scores"][:, :9]), "R@10"),
        (lambda a: a["t2i_indices"].__setitem__((0, 0), 99), r"\[-1, 5\)"),
        (lambda a: a["t2i_indices"].__setitem__((0, 1), a["t2i_indices"][0, 0]), "repeat"),
        (lambda a: a.update(t2i_scores=a["t2i_scores"][:, :3]), "differ in shape"),
        (lambda a: a["i2t_scores"].__setitem__((0, 0), np.nan), "NaN"),
        (lambda a: a.update(text_image_ids=[12345] * len(a["text_image_ids"])), "not among the image ids"),
    ],
)
def test_topk_recall_rejects_bad_lists(change, message: str) -> None:
    images, texts, text_image_ids, image_ids = paired_embeddings(2, num_images=5)
    i2t, t2i = search(images, texts, 10), search(texts, images, 5)
    args = {"i2t_scores": i2t[0], "i2t_indices": i2t[1], "t2i_scores": t2i[0], "t2i_indices": t2i[1],
                "text_image_ids": list(text_image_ids), "image_ids": image_ids}  # fmt: skip
    topk_recall(**args)  # valid as built
    change(args)
    with pytest.raises(ValueError, match=message):
        topk_recall(**args)


# ------------------------------------------------------------------------------------------- approximate indexes
@pytest.fixture(scope="module")
def large():
    images, texts, text_rows = clustered()
    assert len(texts) >= 20_000 and images.shape[1] == 64
    flat = {"i2t": search(images, texts, 10), "t2i": search(texts, images, 10)}
    return images, texts, text_rows, flat


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_approximate_reaches_95_percent_of_flat(large, index: str) -> None:
    images, texts, text_rows, flat = large
    start = time.perf_counter()
    i2t, t2i = search(images, texts, 10, index), search(texts, images, 10, index)
    assert time.perf_counter() - start < 20
    exact = topk_recall(*flat["i2t"], *flat["t2i"], text_rows)
    approx = topk_recall(*i2t, *t2i, text_rows)
    assert 30 < exact["i2t_r10"] < 95 and 30 < exact["t2i_r10"] < 95  # mid-range, so the ratio means something
    assert approx["i2t_r10"] >= 0.95 * exact["i2t_r10"]
    assert approx["t2i_r10"] >= 0.95 * exact["t2i_r10"]
    found = sum(len(np.intersect1d(a, b)) for a, b in zip(flat["i2t"][1], i2t[1]))
    assert found / flat["i2t"][1].size >= 0.95  # neighbour recall@10 over the 20,000-text gallery


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_approximate_search_is_deterministic(index: str) -> None:
    images, texts, _ = clustered(num_images=600, noise=1.6)
    first = search(images, texts, 10, index, seed=3)
    second = search(images, texts, 10, index, seed=3)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_default_nlist_keeps_39_points_per_list() -> None:
    assert default_nlist(20_000) == 512  # 4·sqrt = 566, capped at 20,000 // 39
    assert default_nlist(1_000_000) == 4000
    assert default_nlist(100) == 2 and default_nlist(50) == 1 and default_nlist(1) == 1
    images, texts, _ = clustered(num_images=12, captions=2, dim=8)
    _scores, indices = search(images, texts, 10, "ivf")  # 24 vectors: one list, an exact search
    np.testing.assert_array_equal(indices, search(images, texts, 10)[1])


def test_explicit_settings_are_used() -> None:
    images, texts, _ = clustered(num_images=400, dim=16)
    ivf = build_index(texts, "ivf", nlist=8)
    assert ivf.nlist == 8
    assert tune(ivf, images, texts, 10, nprobe=3).nprobe == 3 and ivf.nprobe == 3
    hnsw = build_index(texts, "hnsw", hnsw_m=8)
    assert tune(hnsw, images, texts, 10, ef_search=40).ef_search == 40 and hnsw.hnsw.efSearch == 40
    tuned = tune(hnsw, images, texts, 10)
    assert tuned.ef_search >= 16 and tuned.sample_overlap >= 0.96
    assert search_index(hnsw, images, 10)[1].shape == (400, 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"index": "annoy"}, "index must be one of"),
        ({"k": 0}, "positive integer"),
        ({"index": "hnsw", "ef_search": 5}, "ef_search must be >= k"),
        ({"index": "ivf", "nlist": 10_000}, "nlist must be between"),
        ({"index": "ivf", "nlist": 4, "nprobe": 5}, "nprobe must be between"),
        ({"queries": np.zeros((3, 7), dtype=np.float32)}, "dimension"),
        ({"queries": np.full((3, 8), np.nan, dtype=np.float32)}, "non-finite"),
        ({"queries": np.zeros((3, 8), dtype=np.int64)}, "floating point"),
    ],
)
def test_search_rejects_bad_input(kwargs: dict, message: str) -> None:
    images, texts, _ = clustered(num_images=100, captions=2, dim=8)
    args = {"queries": images, "gallery": texts, "k": 10} | kwargs
    with pytest.raises(ValueError, match=message):
        search(**args)
