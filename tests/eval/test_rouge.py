"""ROUGE-L: hand-computed cases, the split(" ") quirk, bit-parallel LCS against a dynamic-programming table.

Parity with pycocoevalcap's `Rouge` on many generated corpora is in test_caption_metrics.py.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from vlkd_cli.eval.rouge import lcs_length, lcs_lengths, rouge_l

BETA2 = 1.2**2


def _lcs_table(a: list[str], b: list[str]) -> int:
    """Textbook O(len_a * len_b) LCS, independent of the implementation under test."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _f(p: float, r: float) -> float:
    return (1 + BETA2) * p * r / (r + BETA2 * p) if p and r else 0.0


def test_hand_computed() -> None:
    # LCS("a man riding a horse", "a man on a horse") = "a man a horse" = 4; P = 4/5, R = 4/5 -> F = 0.8.
    score, per_image = rouge_l({1: ["a man on a horse"]}, {1: "a man riding a horse"})
    assert per_image[1] == pytest.approx(0.8, abs=1e-15)
    assert score == per_image[1]
    # P and R are maximised independently: ref 1 gives P = 2/2 (R = 2/6), ref 2 gives R = 1/1 (P = 1/2).
    _, per_image = rouge_l({1: ["x y a b c d", "x"]}, {1: "x y"})
    assert per_image[1] == pytest.approx(_f(1.0, 1.0), abs=1e-15)
    # No common token -> 0; corpus = mean over images.
    score, per_image = rouge_l({1: ["a b"], 2: ["c d"]}, {1: "a b", 2: "e"})
    assert per_image == {1: pytest.approx(1.0), 2: 0.0}
    assert score == pytest.approx(0.5, abs=1e-15)


def test_single_space_split_quirk() -> None:
    # "" splits into one empty token: an empty hypothesis matches an empty reference (LCS 1 of 1 and 1).
    _, per_image = rouge_l({1: ["", "a b"]}, {1: ""})
    assert per_image[1] == pytest.approx(1.0)
    # A double space is an empty token: hypothesis "a  b" has 3 tokens, LCS with "a b" is 2 -> P = 2/3, R = 1.
    _, per_image = rouge_l({1: ["a b"]}, {1: "a  b"})
    assert per_image[1] == pytest.approx(_f(2 / 3, 1.0), abs=1e-15)
    # Token lists are taken as split(" ") of their join; an empty list is [""].
    assert rouge_l({1: [["a", "b"]]}, {1: []}) == rouge_l({1: ["a b"]}, {1: ""})


def test_lcs_bit_parallel_equals_table() -> None:
    rng = random.Random(7)
    for _ in range(400):
        a = [rng.choice("abcdef") for _ in range(rng.randint(0, 140))]
        b = [rng.choice("abcdefg") for _ in range(rng.randint(0, 140))]
        assert lcs_length(a, b) == _lcs_table(a, b) == lcs_length(b, a)
    # The vectorised uint64 path (hypotheses <= 64 tokens) and the Python-int path (longer ones) together.
    hyps = [[rng.choice("abcde") for _ in range(rng.choice([0, 1, 5, 63, 64, 65, 100]))] for _ in range(60)]
    refs = [[rng.choice("abcdefgh") for _ in range(rng.randint(0, 90))] for _ in range(300)]
    ref_hyp = [rng.randrange(len(hyps)) for _ in refs]
    expected = [_lcs_table(hyps[h], r) for h, r in zip(ref_hyp, refs)]
    assert lcs_lengths(hyps, refs, ref_hyp).tolist() == expected
    assert lcs_lengths([], [], np.zeros(0, np.int64)).tolist() == []


def test_errors() -> None:
    with pytest.raises(ValueError, match="same image ids"):
        rouge_l({1: ["a"]}, {2: "a"})
    with pytest.raises(ValueError, match="at least one reference"):
        rouge_l({1: []}, {1: "a"})
