"""BLEU: the statistics of the official demo notebook, hand-computed cases, closest reference length, input checks.

Parity with pycocoevalcap's `Bleu` on many generated corpora is in test_caption_metrics.py.
"""

from __future__ import annotations

import math

import pytest

from vlkd_cli.eval.bleu import bleu, bleu_from_counts


def test_demo_statistics_of_the_official_notebook() -> None:
    # The official demo notebook (tylin/coco-caption cocoEvalCapDemo.ipynb): reflen 9855, testlen 9893, guess/correct
    # per order, Bleu_1..4 0.579 / 0.404 / 0.279 / 0.191.
    guess, correct = [9893, 8893, 7893, 6893], [5732, 2510, 1043, 423]
    scores = bleu_from_counts(correct, guess, 9893, 9855, 4)
    assert [round(s, 6) for s in scores] == [0.579400, 0.404391, 0.278536, 0.190829]
    # testlen > reflen: no brevity penalty, plain cumulative geometric means with the epsilons.
    p = [(c + 1e-15) / (g + 1e-9) for c, g in zip(correct, guess)]
    assert scores[3] == pytest.approx((p[0] * p[1] * p[2] * p[3]) ** 0.25, rel=1e-15)


def test_demo_statistics_equal_official_arithmetic() -> None:
    bleu_scorer = pytest.importorskip("pycocoevalcap.bleu.bleu_scorer")
    scorer = bleu_scorer.BleuScorer(n=4)
    # One "image" carrying the demo's corpus statistics: its sentence score is the corpus formula.
    scorer.crefs = [([9855], {})]
    scorer.ctest = [{"testlen": 9893, "reflen": [9855], "guess": [9893, 8893, 7893, 6893],
                     "correct": [5732, 2510, 1043, 423]}]  # fmt: skip
    official, _ = scorer.compute_score(option="closest")
    assert bleu_from_counts([5732, 2510, 1043, 423], [9893, 8893, 7893, 6893], 9893, 9855, 4) == official


def test_hand_computed_single_image() -> None:
    # hyp "a b c d" vs ref "a b c e": matches 3/4, 2/3, 1/2, 0/1; equal lengths -> ratio 0.9999999999 < 1.
    corpus, per_image = bleu({7: ["a b c e"]}, {7: "a b c d"})
    p = [(3 + 1e-15) / (4 + 1e-9), (2 + 1e-15) / (3 + 1e-9), (1 + 1e-15) / (2 + 1e-9), 1e-15 / (1 + 1e-9)]
    penalty = math.exp(1 - 1 / ((4 + 1e-15) / (4 + 1e-9)))
    assert penalty < 1.0
    expected = [math.prod(p[: k + 1]) ** (1 / (k + 1)) * penalty for k in range(4)]
    assert per_image[7] == pytest.approx(expected, rel=1e-14)
    assert corpus == pytest.approx(expected, rel=1e-14)  # one image: corpus = sentence
    assert corpus[0] == pytest.approx(0.75, abs=1e-9)
    assert corpus[3] < 1e-3  # no 4-gram match: tiny but non-zero (the epsilons)


def test_clipping_and_closest_reference_length() -> None:
    # "the" 3 times in the hypothesis, at most 2 times in one reference -> clipped to 2.
    _, per_image = bleu({1: ["the cat on the mat", "the the"]}, {1: "the the the"})
    assert per_image[1][0] == pytest.approx((2 + 1e-15) / (3 + 1e-9), rel=1e-14)
    # Closest length: refs of 2 and 4 tokens, hypothesis of 3 -> tie, the shorter (2) wins: no penalty.
    _, tie = bleu({1: ["x y", "x y z w"]}, {1: "x y z"})
    assert tie[1][0] == pytest.approx((3 + 1e-15) / (3 + 1e-9), rel=1e-14)
    # Closest is 4 (hypothesis 4 tokens is closer to 4 than to 9): ratio ~ 1 -> penalty exp(~-2.5e-10).
    corpus, _ = bleu({1: ["x y z w", "a b c d e f g h i"]}, {1: "x y z w"})
    assert corpus[0] == pytest.approx(1.0, abs=1e-9)
    assert corpus[0] < 1.0


def test_corpus_sums_statistics_not_sentence_scores() -> None:
    refs = {1: ["a b c d"], 2: ["e f g h i j"]}
    hyps = {1: "a b c d", 2: "e f x"}
    corpus, per_image = bleu(refs, hyps)
    # BLEU-1: (4 + 2 matches) / (4 + 3 guesses); lengths 7 vs 4 + 6 = 10 -> penalty exp(1 - 10/7).
    ratio = (7 + 1e-15) / (10 + 1e-9)
    assert corpus[0] == pytest.approx((6 + 1e-15) / (7 + 1e-9) * math.exp(1 - 1 / ratio), rel=1e-14)
    assert corpus[0] != pytest.approx(sum(per_image[i][0] for i in hyps) / 2, rel=1e-6)


def test_token_lists_equal_strings_and_errors() -> None:
    assert bleu({1: [["a", "b"]]}, {1: ["a", "b"]}) == bleu({1: ["a  b"]}, {1: " a b "})
    with pytest.raises(ValueError, match="same image ids"):
        bleu({1: ["a"]}, {2: "a"})
    with pytest.raises(ValueError, match="at least one reference"):
        bleu({1: []}, {1: "a"})
    with pytest.raises(ValueError, match="no image"):
        bleu({}, {})
