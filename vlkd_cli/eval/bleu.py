"""BLEU-1..n of the COCO caption evaluation, equal to pycocoevalcap 1.2's `Bleu(4).compute_score`.

Reproduces `pycocoevalcap/bleu/bleu.py` + `bleu_scorer.py` (D. Chiang's scorer as modified by H. Fang and T.-Y. Lin;
salaniz/pycocoevalcap@ad63453 = tylin/coco-caption@3a9afb2) with the `closest` reference length that
`Bleu.compute_score` uses (see docs/evaluation.md, "Captioning (`eval-caption`)"):

* tokens = `str.split()` of the tokenized caption; n-grams of order 1..n;
* per image: clipped matches correct_k = sum_g min(count_hyp(g), max over refs count_ref(g)),
  guess_k = max(0, len_hyp - k + 1), reference length = the one closest to len_hyp (ties: the shorter);
* corpus BLEU-n = (prod_{k<=n} (C_k + 1e-15) / (G_k + 1e-9))^(1/n) over the summed statistics, times
  exp(1 - 1/ratio) when ratio = (T + 1e-15) / (R + 1e-9) < 1 (so T == R still gives a brevity penalty of 1 - 1e-10);
* per image: the same formula on the image's own statistics (sentence BLEU with the same epsilons).

The statistics are integers (computed with numpy on interned n-grams shared with `cider.py`); the final formula is
evaluated with the same float operations in the same order as the official code, so results are bit-equal.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from vlkd_cli.eval.cider import CaptionNGrams, Tokens, as_tokens, caption_ngrams, check_images

K = TypeVar("K", bound=Hashable)

_SMALL = 1e-9
_TINY = 1e-15


@dataclass(frozen=True)
class BleuStats:
    """Sufficient statistics of BLEU per image (I images, orders 1..n).

    Attributes:
        testlen: (I,) hypothesis lengths.
        reflen: (I,) closest reference lengths.
        guess: (I, n) candidate n-gram counts.
        correct: (I, n) clipped matches.
    """

    testlen: np.ndarray
    reflen: np.ndarray
    guess: np.ndarray
    correct: np.ndarray


def bleu_stats(grams: CaptionNGrams) -> BleuStats:
    """BLEU statistics of every image from the shared n-gram tables.

    Args:
        grams: The n-gram tables of the evaluation.

    Returns:
        The per-image statistics.
    """
    n, table = grams.n, grams.table
    # Highest count of each hypothesis n-gram over the image's references: the maximum of its group (one n-gram in one
    # image; the hypothesis entry, last in its group, counts as 0 there), then clipped.
    group, first = grams.groups
    hyp = grams.hyp_entries
    ref_tf = table.tf.copy()
    ref_tf[hyp] = 0
    ref_max = np.maximum.reduceat(ref_tf, first)[group[hyp]] if first.size else ref_tf[:0]
    clipped = np.minimum(table.tf[hyp], ref_max)
    image = grams.entry_image[hyp]
    correct = np.bincount(image * n + table.order[hyp], clipped, grams.num_images * n)
    correct = np.rint(correct).astype(np.int64).reshape(-1, n)
    testlen = grams.hyp_lengths
    guess = np.maximum(testlen[:, None] - np.arange(n), 0)  # (I, n)
    # Closest reference length, ties to the shorter one: minimum of |l - t| * M + l over the image's references.
    ref_len = grams.ref_lengths
    scale = int(ref_len.max(initial=0)) + 1
    closeness = np.abs(ref_len - testlen[grams.ref_image]) * scale + ref_len
    starts = np.cumsum(grams.num_refs) - grams.num_refs
    reflen = np.minimum.reduceat(closeness, starts) % scale
    return BleuStats(testlen, reflen, guess, correct)


def bleu_from_counts(
    correct: Sequence[int], guess: Sequence[int], testlen: float, reflen: float, n: int
) -> list[float]:
    """BLEU-1..n from sufficient statistics, with BleuScorer's epsilons and operation order.

    Args:
        correct: n clipped match counts.
        guess: n candidate n-gram counts.
        testlen: Hypothesis length (summed over the corpus for the corpus score).
        reflen: Effective reference length (likewise).
        n: Highest order.

    Returns:
        BLEU-1..n.
    """
    scores = []
    product = 1.0
    for k in range(n):
        product *= (float(correct[k]) + _TINY) / (float(guess[k]) + _SMALL)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    if ratio < 1:
        penalty = math.exp(1 - 1 / ratio)
        scores = [s * penalty for s in scores]
    return scores


def bleu(
    refs: Mapping[K, Sequence[str | Tokens]], hyps: Mapping[K, str | Tokens], n: int = 4
) -> tuple[list[float], dict[K, list[float]]]:
    """Corpus BLEU-1..n and per-image sentence BLEU-1..n, as pycocoevalcap's `Bleu(n).compute_score`.

    Args:
        refs: image id -> references, each a list of tokens or a string split on whitespace (>= 1 per image).
        hyps: image id -> the hypothesis (tokens or string); same ids as `refs`.
        n: Highest n-gram order.

    Returns:
        ([BLEU-1, ..., BLEU-n] of the corpus, image id -> [BLEU-1, ..., BLEU-n] of that image alone).

    Raises:
        ValueError: Ids differ, no image is given, or an image has no reference.
    """
    ids = check_images(refs, hyps, "BLEU")
    grams = caption_ngrams([[as_tokens(r) for r in refs[i]] for i in ids], [as_tokens(hyps[i]) for i in ids], n)
    return bleu_scores(grams, ids)


def bleu_scores(grams: CaptionNGrams, ids: Sequence[K]) -> tuple[list[float], dict[K, list[float]]]:
    """Corpus and per-image BLEU-1..n from the shared n-gram tables.

    Args:
        grams: The n-gram tables of the evaluation (images in the order of `ids`).
        ids: The image ids.

    Returns:
        As `bleu`.
    """
    stats = bleu_stats(grams)
    n = grams.n
    per_image = dict(zip(ids, sentence_bleu(stats).tolist()))
    corpus = bleu_from_counts(
        stats.correct.sum(axis=0).tolist(),
        stats.guess.sum(axis=0).tolist(),
        int(stats.testlen.sum()),
        int(stats.reflen.sum()),
        n,
    )
    return corpus, per_image


def sentence_bleu(stats: BleuStats) -> np.ndarray:
    """`bleu_from_counts` of every image at once, bit-equal: the same float operations in the same order (numpy for
    the arithmetic, Python's `**` and `math.exp` for the powers, whose numpy versions may differ in the last bit).

    Args:
        stats: Per-image statistics.

    Returns:
        (I, n) BLEU-1..n of each image.
    """
    num_images, n = stats.guess.shape
    product = np.cumprod((stats.correct + _TINY) / (stats.guess + _SMALL), axis=1)  # (I, n), multiplied k by k
    exponents = [1.0 / (k + 1) for k in range(n)] * num_images
    scores = np.array(list(map(pow, product.ravel().tolist(), exponents)), dtype=np.float64).reshape(num_images, n)
    ratio = (stats.testlen + _TINY) / (stats.reflen + _SMALL)
    short = np.flatnonzero(ratio < 1)
    penalty = [math.exp(1 - 1 / r) for r in ratio[short].tolist()]
    scores[short] *= np.array(penalty, dtype=np.float64)[:, None]
    return scores
