"""CIDEr-D: equal to pycocoevalcap's CiderScorer on the same tokens; a hand-checked case; the tokenizer stand-in."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlkd_cli.eval.cider import cider_d, simple_tokenize

cider_scorer = pytest.importorskip("pycocoevalcap.cider.cider_scorer")


def _official(refs: dict[int, list[list[str]]], hyps: dict[int, list[str]]) -> tuple[float, list[float]]:
    scorer = cider_scorer.CiderScorer(n=4, sigma=6.0)
    for image_id in hyps:
        scorer += (" ".join(hyps[image_id]), [" ".join(r) for r in refs[image_id]])
    score, scores = scorer.compute_score()
    return float(score), [float(s) for s in scores]


def _random_case(rng: np.random.Generator) -> tuple[dict[int, list[list[str]]], dict[int, list[str]]]:
    vocab = ["a", "red", "blue", "circle", "star", "on", "the", "left", "of", "two", "big", "ring"]
    num_images = int(rng.integers(1, 13))
    refs, hyps = {}, {}
    for image_id in rng.choice(1000, size=num_images, replace=False):

        def words(low: int) -> list[str]:
            return [vocab[int(i)] for i in rng.integers(len(vocab), size=int(rng.integers(low, 15)))]

        refs[int(image_id)] = [words(1) for _ in range(int(rng.integers(1, 7)))]
        hyps[int(image_id)] = words(0) if rng.random() < 0.7 else list(refs[int(image_id)][0])
    return refs, hyps


def test_parity_with_pycocoevalcap() -> None:
    rng = np.random.default_rng(1234)
    for _ in range(200):
        refs, hyps = _random_case(rng)
        ours, per_image = cider_d(refs, hyps)
        theirs, their_scores = _official(refs, hyps)
        assert ours == pytest.approx(theirs, abs=1e-12, rel=0)
        assert list(per_image) == list(hyps)
        assert np.allclose(list(per_image.values()), their_scores, rtol=0, atol=1e-12)


def test_hand_checked() -> None:
    # Two images, each hypothesis equals its single reference, no n-gram shared across images: every weight is
    # ln 2; orders 1 and 2 have cosine 1, orders 3 and 4 are empty (0); no length penalty. 10 * (1+1+0+0)/4 = 5.
    refs = {1: [["red", "circle"]], 2: [["blue", "star"]]}
    hyps = {1: ["red", "circle"], 2: ["blue", "star"]}
    score, per_image = cider_d(refs, hyps)
    assert score == pytest.approx(5.0, abs=1e-12)
    assert per_image == pytest.approx({1: 5.0, 2: 5.0}, abs=1e-12)
    # A shared unigram ("a", df = N) has weight 0 and drops out; the rest still matches exactly.
    refs = {1: [["a", "circle"]], 2: [["a", "star"]]}
    score, _ = cider_d(refs, {1: ["a", "circle"], 2: ["a", "star"]})
    assert score == pytest.approx(5.0, abs=1e-12)
    # One extra word: delta = 1 bigram -> penalty exp(-1/72) on every order; unigram cosine with the clipped sum.
    refs = {1: [["red", "circle"]], 2: [["blue", "star"]]}
    score, per_image = cider_d(refs, {1: ["red", "circle", "star"], 2: ["blue", "star"]})
    ln2 = math.log(2)
    # image 1: hyp unigram weights red, circle, star = ln2 each (star has df 1); ref red, circle.
    cos1 = (2 * ln2 * ln2) / (math.sqrt(3) * ln2 * math.sqrt(2) * ln2)
    # bigrams: hyp (red circle), (circle star: df 0 -> weight ln2); ref (red circle).
    cos2 = (ln2 * ln2) / (math.sqrt(2) * ln2 * ln2)
    expected1 = 10 * (cos1 + cos2) * math.exp(-1 / 72) / 4
    assert per_image[1] == pytest.approx(expected1, abs=1e-12)
    assert per_image[2] == pytest.approx(5.0, abs=1e-12)


def test_single_image_scores_zero_and_errors() -> None:
    assert cider_d({7: [["a", "b"]]}, {7: ["a", "b"]})[0] == 0.0
    with pytest.raises(ValueError):
        cider_d({1: [["a"]]}, {2: ["a"]})
    with pytest.raises(ValueError):
        cider_d({1: []}, {1: ["a"]})
    with pytest.raises(ValueError):
        cider_d({}, {})


def test_simple_tokenize() -> None:
    expected = ["a", "red", "circle", "to", "the", "left", "of", "a", "star"]
    assert simple_tokenize("A Red circle, to the LEFT of a star.") == expected
    assert simple_tokenize("a medium-sized ring; don't!") == ["a", "medium-sized", "ring", "don't"]
    assert simple_tokenize("  ") == []
