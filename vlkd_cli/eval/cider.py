"""CIDEr-D, computed exactly as pycocoevalcap's `CiderScorer` (the COCO caption evaluation), without Java.

The inputs are already tokenized captions (lists of tokens). pycocoevalcap runs the PTB tokenizer first and then
splits on whitespace; give this module the same tokens and the numbers are equal to the last bits that floating
point allows (the arithmetic is done in the same order).

Rules (see docs of the official code): n-grams of order 1..4; document frequency df(g) = number of evaluated images
whose reference set contains g; weight of g in a sentence tf(g) * (ln N - ln max(1, df(g))) with N the number of
evaluated images; per order, the similarity of the hypothesis to one reference is
sum_g min(w_hyp, w_ref) * w_ref / (|w_hyp| |w_ref|) times exp(-delta^2 / (2 sigma^2)), delta the difference of
their bigram counts; image score = 10 * mean over orders of the mean over references; corpus score = mean of the
image scores. The score depends on the set of evaluated images (df and N); one image scores 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

_TOKEN = re.compile(r"\w+(?:[-'\u2019]\w+)*")

NGramCounts = dict[tuple[str, ...], int]


def simple_tokenize(text: str) -> list[str]:
    """Lowercase words without punctuation; a stand-in for the PTB tokenizer the official evaluation uses.

    Hyphenated words and words with an apostrophe stay one token ("medium-sized", "don't").

    Args:
        text: A caption.

    Returns:
        Its tokens.
    """
    return _TOKEN.findall(text.lower())


def ngram_counts(tokens: Sequence[str], n: int = 4) -> NGramCounts:
    """Counts of all 1..n-grams, in the insertion order pycocoevalcap's `precook` uses.

    Args:
        tokens: A tokenized sentence.
        n: Highest n-gram order.

    Returns:
        n-gram (tuple of tokens) -> count.
    """
    counts: NGramCounts = {}
    for k in range(1, n + 1):
        for i in range(len(tokens) - k + 1):
            gram = tuple(tokens[i : i + k])
            counts[gram] = counts.get(gram, 0) + 1
    return counts


def document_frequency(refs: Sequence[Sequence[NGramCounts]]) -> dict[tuple[str, ...], int]:
    """Number of images whose references contain each n-gram (each image counts once).

    Args:
        refs: Per image, the n-gram counts of each reference.

    Returns:
        n-gram -> document frequency.
    """
    df: dict[tuple[str, ...], int] = {}
    for image_refs in refs:
        for gram in {g for ref in image_refs for g in ref}:
            df[gram] = df.get(gram, 0) + 1
    return df


class _Vectorizer:
    """Maps n-gram counts to per-order tf-idf vectors, norms and length, with a cache of log(df)."""

    def __init__(self, df: Mapping[tuple[str, ...], int], num_images: int, n: int) -> None:
        self.df = df
        self.n = n
        self.ref_len = np.log(float(num_images))
        self._log: dict[int, float] = {}

    def _log_df(self, gram: tuple[str, ...]) -> float:
        count = self.df.get(gram, 0)
        if count not in self._log:
            self._log[count] = np.log(max(1.0, float(count)))
        return self._log[count]

    def __call__(self, counts: NGramCounts) -> tuple[list[dict[tuple[str, ...], float]], list[float], int]:
        vec: list[dict[tuple[str, ...], float]] = [{} for _ in range(self.n)]
        norm = [0.0] * self.n
        length = 0
        for gram, tf in counts.items():
            order = len(gram) - 1
            weight = float(tf) * (self.ref_len - self._log_df(gram))
            vec[order][gram] = weight
            norm[order] += pow(weight, 2)
            if order == 1:
                length += tf
        return vec, [np.sqrt(v) for v in norm], length


def _similarity(
    hyp: tuple[list[dict], list[float], int], ref: tuple[list[dict], list[float], int], n: int, sigma: float
) -> np.ndarray:
    """Clipped cosine similarity per order times the Gaussian length penalty (pycocoevalcap's `sim`)."""
    vec_hyp, norm_hyp, length_hyp = hyp
    vec_ref, norm_ref, length_ref = ref
    delta = float(length_hyp - length_ref)
    val = np.array([0.0 for _ in range(n)])
    for order in range(n):
        ref_order = vec_ref[order]
        for gram, weight in vec_hyp[order].items():
            if gram in ref_order:
                val[order] += min(weight, ref_order[gram]) * ref_order[gram]
        if norm_hyp[order] != 0 and norm_ref[order] != 0:
            val[order] /= norm_hyp[order] * norm_ref[order]
        val[order] *= math.e ** (-(delta**2) / (2 * sigma**2))
    return val


def cider_d(
    refs: Mapping[int, Sequence[Sequence[str]]],
    hyps: Mapping[int, Sequence[str]],
    *,
    n: int = 4,
    sigma: float = 6.0,
) -> tuple[float, dict[int, float]]:
    """CIDEr-D of one tokenized hypothesis per image against its tokenized references.

    Args:
        refs: image id -> references, each a list of tokens (at least one reference per image).
        hyps: image id -> the hypothesis as a list of tokens; same ids as `refs`.
        n: Highest n-gram order.
        sigma: Width of the length penalty.

    Returns:
        (corpus score, image id -> image score), on pycocoevalcap's scale (x10; COCO papers print x100).

    Raises:
        ValueError: Ids differ between `refs` and `hyps`, no image is given, or an image has no reference.
    """
    if set(refs) != set(hyps):
        raise ValueError("CIDEr-D: references and hypotheses must cover the same image ids")
    if not hyps:
        raise ValueError("CIDEr-D: no image to score")
    ids = list(hyps)
    ref_counts = [[ngram_counts(list(r), n) for r in refs[i]] for i in ids]
    if any(not r for r in ref_counts):
        raise ValueError("CIDEr-D: every image needs at least one reference")
    vectorize = _Vectorizer(document_frequency(ref_counts), len(ids), n)
    scores = []
    for image_id, image_refs in zip(ids, ref_counts):
        hyp = vectorize(ngram_counts(list(hyps[image_id]), n))
        score = np.array([0.0 for _ in range(n)])
        for ref in image_refs:
            score += _similarity(hyp, vectorize(ref), n, sigma)
        score_avg = np.mean(score)
        score_avg /= len(image_refs)
        score_avg *= 10.0
        scores.append(score_avg)
    return float(np.mean(np.array(scores))), {i: float(s) for i, s in zip(ids, scores)}
