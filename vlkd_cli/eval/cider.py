"""CIDEr-D, computed as pycocoevalcap 1.2's `CiderScorer` (the COCO caption evaluation), without Java, vectorised.

Reproduces `pycocoevalcap/cider/cider_scorer.py` (salaniz/pycocoevalcap@ad63453 = tylin/coco-caption@3a9afb2,
identical to vrama91/cider `ciderD_scorer.py`). The inputs are already tokenized captions (lists of tokens, or
strings split on whitespace like the official `str.split()`). pycocoevalcap runs the PTB tokenizer first; give this
module the same tokens and the numbers agree to the last few bits (differences of a few ulp come only from the order
in which the squared weights and the clipped products are summed).

Rules (those of `cider_scorer.py`): n-grams of order 1..4; document frequency df(g) = number
of evaluated images whose reference set contains g; weight of g in a sentence tf(g) * (ln N - ln max(1, df(g))) with
N the number of evaluated images; per order, the similarity of the hypothesis to one reference is
sum_g min(w_hyp, w_ref) * w_ref / (|w_hyp| |w_ref|) times exp(-delta^2 / (2 sigma^2)), delta the difference of their
bigram counts; image score = 10 * mean over orders of the mean over references; corpus score = mean of the image
scores. The score depends on the set of evaluated images (df and N); one image scores 0 (see docs/evaluation.md,
"Captioning (`eval-caption`)").

Implementation: every n-gram of the corpus is interned to an integer id (`ngram_table`), so df, tf-idf weights,
norms and the clipped dot products are numpy array operations (`CaptionNGrams` is shared with `bleu.py`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from typing import TypeVar

import numpy as np

_TOKEN = re.compile(r"\w+(?:[-'\u2019]\w+)*")

K = TypeVar("K", bound=Hashable)
NGramCounts = dict[tuple[str, ...], int]
Tokens = Sequence[str]


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


def as_tokens(sentence: str | Tokens) -> Tokens:
    """Tokens of a sentence: a string is split on whitespace (`str.split()`, as BleuScorer and CiderScorer do).

    Args:
        sentence: A string or an already tokenized sentence.

    Returns:
        The tokens.
    """
    return sentence.split() if isinstance(sentence, str) else sentence


@dataclass(frozen=True)
class NGramTable:
    """All 1..n-grams of a list of sentences, interned to integer ids; one entry per (sentence, distinct n-gram).

    Entries are sorted by (sentence, gram id).

    Attributes:
        lengths: (S,) number of tokens of each sentence.
        sent: (E,) sentence index of each entry.
        gram: (E,) n-gram id of each entry, in [0, num_grams).
        order: (E,) n-gram order minus one (0 = unigram).
        tf: (E,) count of the n-gram in the sentence.
        num_grams: Number of distinct n-grams (all orders).
    """

    lengths: np.ndarray
    sent: np.ndarray
    gram: np.ndarray
    order: np.ndarray
    tf: np.ndarray
    num_grams: int


def _intern_tokens(sentences: Sequence[Tokens]) -> tuple[np.ndarray, np.ndarray, int]:
    """Token ids of all sentences, concatenated: (T,) ids, (S,) lengths, vocabulary size."""
    lengths = np.fromiter(map(len, sentences), np.int64, count=len(sentences))
    flat = list(chain.from_iterable(sentences))
    vocab = dict(zip(dict.fromkeys(flat), range(len(flat))))
    ids = np.fromiter(map(vocab.__getitem__, flat), np.int64, count=len(flat))
    return ids, lengths, len(vocab)


def ngram_table(sentences: Sequence[Tokens], n: int = 4) -> NGramTable:
    """Intern the 1..n-grams of tokenized sentences.

    Args:
        sentences: S tokenized sentences.
        n: Highest n-gram order.

    Returns:
        The table (entries sorted by sentence, then gram id).
    """
    tokens, lengths, vocab_size = _intern_tokens(sentences)  # (T,), (S,)
    total = tokens.size
    ends = np.cumsum(lengths)
    sent_of_token = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)  # (T,)
    remaining = np.repeat(ends, lengths) - np.arange(total, dtype=np.int64)  # (T,) tokens from here to the end
    sents, grams = [sent_of_token], [tokens]
    offsets = [0, vocab_size]  # gram ids of order k are offsets[k - 1] .. offsets[k] - 1
    prev = tokens  # id (within its order) of the (k-1)-gram starting at each token
    for k in range(2, n + 1):
        starts = np.flatnonzero(remaining >= k)
        combined = prev[starts] * vocab_size + tokens[starts + k - 1]
        uniq, local = np.unique(combined, return_inverse=True)
        prev = np.zeros(total, np.int64)
        prev[starts] = local.reshape(-1)
        sents.append(sent_of_token[starts])
        grams.append(local.reshape(-1) + offsets[-1])
        offsets.append(offsets[-1] + uniq.size)
    num_grams = max(offsets[-1], 1)
    # One entry per (sentence, gram) with its count: sort the occurrence keys (no stable argsort needed).
    keys = np.sort(np.concatenate(sents) * num_grams + np.concatenate(grams))
    if keys.size:
        first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        tf = np.diff(np.append(first, keys.size))
        keys = keys[first]
    else:
        tf = keys
    gram = keys % num_grams
    order = np.searchsorted(np.asarray(offsets[1:], np.int64), gram, side="right")
    return NGramTable(lengths, keys // num_grams, gram, order, tf, num_grams)


@dataclass(frozen=True)
class CaptionNGrams:
    """The n-grams of an evaluation: the references of every image, then one hypothesis per image.

    Attributes:
        table: Sentences 0..R-1 are the references (image by image), R..R+I-1 the hypotheses (image order).
        num_refs: (I,) number of references of each image (>= 1).
        ref_image: (R,) image index of each reference.
        n: Highest n-gram order.
    """

    table: NGramTable
    num_refs: np.ndarray
    ref_image: np.ndarray
    n: int

    @property
    def num_images(self) -> int:
        """I, the number of evaluated images."""
        return int(self.num_refs.size)

    @cached_property
    def split(self) -> int:
        """Index of the first hypothesis entry in the table (entries are sorted by sentence)."""
        return int(np.searchsorted(self.table.sent, self.ref_image.size))

    @cached_property
    def ref_entries(self) -> tuple[np.ndarray, ...]:
        """(sentence, image, gram, order, tf) of every reference entry, each (E_r,)."""
        t, cut = self.table, self.split
        sent = t.sent[:cut]
        return sent, self.ref_image[sent], t.gram[:cut], t.order[:cut], t.tf[:cut]

    @cached_property
    def hyp_entries(self) -> tuple[np.ndarray, ...]:
        """(image, gram, order, tf) of every hypothesis entry, each (E_h,), sorted by (image, gram)."""
        t, cut = self.table, self.split
        return t.sent[cut:] - self.ref_image.size, t.gram[cut:], t.order[cut:], t.tf[cut:]

    @cached_property
    def matches(self) -> tuple[np.ndarray, np.ndarray]:
        """Pairs of a reference entry and the hypothesis entry of the same image and n-gram: (ref idx, hyp idx)."""
        _, r_img, r_gram, _, _ = self.ref_entries
        h_img, h_gram, _, _ = self.hyp_entries
        size = self.table.num_grams
        h_key = h_img * size + h_gram  # sorted
        if h_key.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        r_key = r_img * size + r_gram
        pos = np.minimum(np.searchsorted(h_key, r_key), h_key.size - 1)
        hit = np.flatnonzero(h_key[pos] == r_key)
        return hit, pos[hit]

    @property
    def ref_lengths(self) -> np.ndarray:
        """(R,) token counts of the references."""
        return self.table.lengths[: self.ref_image.size]

    @property
    def hyp_lengths(self) -> np.ndarray:
        """(I,) token counts of the hypotheses."""
        return self.table.lengths[self.ref_image.size :]


def caption_ngrams(refs: Sequence[Sequence[Tokens]], hyps: Sequence[Tokens], n: int = 4) -> CaptionNGrams:
    """Intern the n-grams of references and hypotheses of an evaluation.

    Args:
        refs: Per image, its tokenized references (at least one each).
        hyps: Per image (same order), the tokenized hypothesis.
        n: Highest n-gram order.

    Returns:
        The shared n-gram tables.
    """
    num_refs = np.fromiter(map(len, refs), np.int64, count=len(refs))
    sentences = [*chain.from_iterable(refs), *hyps]
    ref_image = np.repeat(np.arange(num_refs.size, dtype=np.int64), num_refs)
    return CaptionNGrams(ngram_table(sentences, n), num_refs, ref_image, n)


def check_images(refs: Mapping[K, Sequence[object]], hyps: Mapping[K, object], metric: str) -> list[K]:
    """Ids to score, in the order of `hyps`; the sanity checks of the official scorers as ValueErrors.

    Args:
        refs: image id -> references.
        hyps: image id -> hypothesis.
        metric: Name used in the messages.

    Returns:
        The image ids.

    Raises:
        ValueError: Ids differ, no image is given, or an image has no reference.
    """
    if set(refs) != set(hyps):
        raise ValueError(f"{metric}: references and hypotheses must cover the same image ids")
    if not hyps:
        raise ValueError(f"{metric}: no image to score")
    empty = [i for i in hyps if len(refs[i]) == 0]
    if empty:
        raise ValueError(f"{metric}: every image needs at least one reference; none for ids {empty[:10]}")
    return list(hyps)


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based; numpy 2's hash-based `np.unique` is slower on these int arrays)."""
    ordered = np.sort(values)
    if ordered.size == 0:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def sum_by(index: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """(size,) float64 sums of `weights` grouped by `index`, each accumulated in input order (np.bincount)."""
    return np.bincount(index, weights.astype(np.float64, copy=False), size).astype(np.float64, copy=False)


def _log_df(df: np.ndarray) -> np.ndarray:
    """np.log(max(1.0, df)) per n-gram, one scalar np.log per distinct value (bit-equal to the official calls)."""
    table = np.zeros(int(df.max(initial=0)) + 1)
    for v in np.flatnonzero(np.bincount(df)).tolist():
        table[v] = np.log(max(1.0, float(v)))
    return table[df]


def _length_penalty(delta: np.ndarray, sigma: float) -> np.ndarray:
    """e ** (-delta^2 / (2 sigma^2)) per element, as Python floats (one pow per distinct delta)."""
    low = int(delta.min(initial=0))
    shifted = delta - low
    table = np.zeros(int(shifted.max(initial=0)) + 1)
    for v in np.flatnonzero(np.bincount(shifted)).tolist():
        table[v] = math.e ** (-(float(v + low) ** 2) / (2 * sigma**2))
    return table[shifted]


def cider_image_scores(grams: CaptionNGrams, sigma: float = 6.0) -> np.ndarray:
    """CIDEr-D of every image.

    Args:
        grams: The n-gram tables of the evaluation.
        sigma: Width of the length penalty.

    Returns:
        (I,) image scores (x10, pycocoevalcap's scale).
    """
    n, num_images, size = grams.n, grams.num_images, grams.table.num_grams
    num_ref_sents = grams.ref_image.size
    r_sent, r_img, r_gram, r_order, r_tf = grams.ref_entries
    h_img, h_gram, h_order, h_tf = grams.hyp_entries
    df = np.bincount(unique_sorted(r_img * size + r_gram) % size, minlength=size)  # (G,)
    idf = np.log(float(num_images)) - _log_df(df)  # (G,) ln N - ln max(1, df)
    r_w = r_tf.astype(np.float64) * idf[r_gram]  # (E_r,)
    h_w = h_tf.astype(np.float64) * idf[h_gram]  # (E_h,)
    r_norm = np.sqrt(sum_by(r_sent * n + r_order, r_w**2, num_ref_sents * n)).reshape(-1, n)  # (R, n)
    h_norm = np.sqrt(sum_by(h_img * n + h_order, h_w**2, num_images * n)).reshape(-1, n)  # (I, n)
    # Clipped dot products over the n-grams a reference shares with the hypothesis of its image.
    hit, hyp_hit = grams.matches
    prod = np.minimum(h_w[hyp_hit], r_w[hit]) * r_w[hit]
    val = sum_by(r_sent[hit] * n + r_order[hit], prod, num_ref_sents * n).reshape(-1, n)  # (R, n)
    denom = h_norm[grams.ref_image] * r_norm  # (R, n)
    divide = (h_norm[grams.ref_image] != 0) & (r_norm != 0)
    val[divide] /= denom[divide]
    bigrams = np.maximum(grams.table.lengths - 1, 0)  # bigram occurrences of each sentence
    delta = bigrams[num_ref_sents:][grams.ref_image] - bigrams[:num_ref_sents]  # (R,)
    val *= _length_penalty(delta, sigma)[:, None]
    per_order = sum_by((grams.ref_image[:, None] * n + np.arange(n)).reshape(-1), val.reshape(-1), num_images * n)
    per_order = per_order.reshape(-1, n)  # (I, n), summed over references in order
    scores = np.mean(per_order, axis=1)
    scores /= grams.num_refs
    scores *= 10.0
    return scores


def cider_d(
    refs: Mapping[K, Sequence[str | Tokens]],
    hyps: Mapping[K, str | Tokens],
    *,
    n: int = 4,
    sigma: float = 6.0,
) -> tuple[float, dict[K, float]]:
    """CIDEr-D of one tokenized hypothesis per image against its tokenized references.

    Args:
        refs: image id -> references, each a list of tokens or a string split on whitespace (at least one per image).
        hyps: image id -> the hypothesis, a list of tokens or a string; same ids as `refs`.
        n: Highest n-gram order.
        sigma: Width of the length penalty.

    Returns:
        (corpus score, image id -> image score), on pycocoevalcap's scale (x10; COCO papers print x100).

    Raises:
        ValueError: Ids differ between `refs` and `hyps`, no image is given, or an image has no reference.
    """
    ids = check_images(refs, hyps, "CIDEr-D")
    grams = caption_ngrams([[as_tokens(r) for r in refs[i]] for i in ids], [as_tokens(hyps[i]) for i in ids], n)
    scores = cider_image_scores(grams, sigma)
    return float(np.mean(scores)), dict(zip(ids, scores.tolist()))
