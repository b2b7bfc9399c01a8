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

Implementation: every n-gram of the corpus is interned to an integer id (`ngram_table`, one sort per order), so df,
tf-idf weights, norms and the clipped dot products are numpy array operations (`CaptionNGrams` is shared with
`bleu.py`). The table's entries are sorted by (n-gram, sentence) and the sentences go image by image, so each n-gram
of each image is one run of entries: df counts the runs with a reference, and a reference entry meets the hypothesis
entry of its run.
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

from vlkd_cli.eval.token_ids import TokenIds, intern_tokens

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

    Entries are sorted by (gram id, sentence); gram ids are grouped by order (unigrams first).

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


def changes(values: np.ndarray) -> np.ndarray:
    """(N,) bool: True where a run of equal values starts (at 0 and wherever the value differs from the previous)."""
    starts = np.empty(values.size, dtype=bool)
    starts[:1] = True
    np.not_equal(values[1:], values[:-1], out=starts[1:])
    return starts


def _sort_occurrences(code: np.ndarray, start: np.ndarray, num_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """n-gram occurrences (code, start token) sorted by (code, start): one np.sort of code * T + start when that fits
    in int64 (always, short of billions of tokens), else a lexsort."""
    if code.size == 0:
        return code, start
    if (int(code.max()) + 1) * num_tokens < 2**62:
        key = np.sort(code * num_tokens + start)
        code = key // num_tokens
        return code, key - code * num_tokens
    order = np.lexsort((start, code))
    return code[order], start[order]


def ngram_table(sentences: Sequence[Tokens], n: int = 4) -> NGramTable:
    """Intern the 1..n-grams of tokenized sentences.

    Args:
        sentences: S tokenized sentences.
        n: Highest n-gram order.

    Returns:
        The table (entries sorted by gram id, then sentence).
    """
    return ngram_table_of_ids(intern_tokens(sentences), n)


def ngram_table_of_ids(sentences: TokenIds, n: int = 4) -> NGramTable:
    """Intern the 1..n-grams of sentences given as token ids.

    Order by order, each occurrence gets the code (id of its (k-1)-gram prefix) * V + (id of its last token); one sort
    of the occurrences by (code, position) then gives, as runs, the distinct k-grams (new ids in code order) and within
    each the sentences that hold it (positions increase with the sentence) with their counts.

    Args:
        sentences: S sentences.
        n: Highest n-gram order.

    Returns:
        The table (entries sorted by gram id, then sentence).
    """
    tokens, lengths, vocab_size = sentences.ids, sentences.lengths, sentences.vocab_size  # (T,), (S,)
    total = tokens.size
    sent_of_token = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)  # (T,)
    remaining = np.repeat(np.cumsum(lengths), lengths) - np.arange(total, dtype=np.int64)  # (T,) tokens to the end
    prev = np.zeros(total, np.int64)  # id (within its order) of the (k-1)-gram starting at each token
    parts: list[tuple[np.ndarray, ...]] = []
    num_grams = 0
    for k in range(1, n + 1):
        start = np.flatnonzero(remaining >= k)
        code = tokens[start] if k == 1 else prev[start] * vocab_size + tokens[start + k - 1]
        code, start = _sort_occurrences(code, start, total)
        new_gram = changes(code)
        local = np.cumsum(new_gram) - 1  # (occurrences,) id within order k
        sent = sent_of_token[start]
        first = np.flatnonzero(new_gram | changes(sent))  # one entry per (gram, sentence)
        tf = np.diff(np.append(first, code.size))
        parts.append((sent[first], local[first] + num_grams, np.full(first.size, k - 1, np.int64), tf))
        num_grams += int(local[-1]) + 1 if local.size else 0
        prev[start] = local
    sent, gram, order, tf = (np.concatenate(column) for column in zip(*parts))
    return NGramTable(lengths, sent, gram, order, tf, max(num_grams, 1))


@dataclass(frozen=True)
class CaptionNGrams:
    """The n-grams of an evaluation. Sentences go image by image: the image's references, then its hypothesis.

    The table's entries are sorted by (n-gram, sentence), so the entries of one n-gram in one image are a run (a
    "group") whose last entry is the hypothesis's, if the hypothesis holds that n-gram.

    Attributes:
        table: The n-gram table of all sentences.
        num_refs: (I,) number of references of each image (>= 1).
        n: Highest n-gram order.
    """

    table: NGramTable
    num_refs: np.ndarray
    n: int

    @property
    def num_images(self) -> int:
        """I, the number of evaluated images."""
        return int(self.num_refs.size)

    @cached_property
    def hyp_sentence(self) -> np.ndarray:
        """(I,) sentence index of each hypothesis."""
        return np.cumsum(self.num_refs + 1) - 1

    @cached_property
    def ref_sentence(self) -> np.ndarray:
        """(R,) sentence index of each reference (image by image)."""
        is_ref = np.ones(self.table.lengths.size, dtype=bool)
        is_ref[self.hyp_sentence] = False
        return np.flatnonzero(is_ref)

    @cached_property
    def ref_image(self) -> np.ndarray:
        """(R,) image index of each reference."""
        return np.repeat(np.arange(self.num_images, dtype=np.int64), self.num_refs)

    @property
    def ref_lengths(self) -> np.ndarray:
        """(R,) token counts of the references."""
        return self.table.lengths[self.ref_sentence]

    @property
    def hyp_lengths(self) -> np.ndarray:
        """(I,) token counts of the hypotheses."""
        return self.table.lengths[self.hyp_sentence]

    @cached_property
    def entry_image(self) -> np.ndarray:
        """(E,) image index of each table entry."""
        sentence_image = np.repeat(np.arange(self.num_images, dtype=np.int64), self.num_refs + 1)
        return sentence_image[self.table.sent]

    @cached_property
    def hyp_entries(self) -> np.ndarray:
        """(E_h,) indices of the hypotheses' entries in the table."""
        is_hyp = np.zeros(self.table.lengths.size, dtype=bool)
        is_hyp[self.hyp_sentence] = True
        return np.flatnonzero(is_hyp[self.table.sent])

    @cached_property
    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """(group of each entry (E,), first entry of each group (Q,)); a group = one n-gram in one image."""
        start = changes(self.table.gram) | changes(self.entry_image)
        return np.cumsum(start) - 1, np.flatnonzero(start)

    @cached_property
    def matches(self) -> tuple[np.ndarray, np.ndarray]:
        """Pairs of a reference entry and the hypothesis entry of the same image and n-gram: (ref idx, hyp idx)."""
        group, first = self.groups
        hyp_of_group = np.full(first.size, -1, np.int64)
        hyp_of_group[group[self.hyp_entries]] = self.hyp_entries
        partner = hyp_of_group[group]  # (E,) the hypothesis entry of each entry's group, -1 if none
        ref = np.flatnonzero(partner >= 0)
        ref = ref[partner[ref] != ref]  # not the hypothesis entry itself
        return ref, partner[ref]


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
    sentences = list(chain.from_iterable((*image_refs, hyp) for image_refs, hyp in zip(refs, hyps)))
    return CaptionNGrams(ngram_table(sentences, n), num_refs, n)


def caption_ngrams_of_ids(sentences: TokenIds, num_refs: np.ndarray, n: int = 4) -> CaptionNGrams:
    """`caption_ngrams` of sentences given as token ids.

    Args:
        sentences: Image by image, the image's references, then its hypothesis.
        num_refs: (I,) number of references of each image (>= 1).
        n: Highest n-gram order.

    Returns:
        The shared n-gram tables.
    """
    return CaptionNGrams(ngram_table_of_ids(sentences, n), num_refs, n)


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
    n, num_images, table = grams.n, grams.num_images, grams.table
    num_sentences = table.lengths.size
    _, first = grams.groups
    # df: the groups (n-gram, image) that hold a reference entry; a group starts with its hypothesis entry only when
    # the references of that image lack the n-gram.
    is_hyp = np.zeros(table.gram.size, dtype=bool)
    is_hyp[grams.hyp_entries] = True
    df = np.bincount(table.gram[first[~is_hyp[first]]], minlength=table.num_grams)  # (G,)
    idf = np.log(float(num_images)) - _log_df(df)  # (G,) ln N - ln max(1, df)
    weight = table.tf.astype(np.float64) * idf[table.gram]  # (E,)
    slot = table.sent * n + table.order  # (E,) (sentence, order)
    norm = np.sqrt(sum_by(slot, weight**2, num_sentences * n)).reshape(-1, n)  # (S, n)
    # Clipped dot products over the n-grams a reference shares with the hypothesis of its image.
    ref, hyp = grams.matches
    prod = np.minimum(weight[hyp], weight[ref]) * weight[ref]
    val = sum_by(slot[ref], prod, num_sentences * n).reshape(-1, n)[grams.ref_sentence]  # (R, n)
    h_norm, r_norm = norm[grams.hyp_sentence][grams.ref_image], norm[grams.ref_sentence]  # (R, n) each
    divide = (h_norm != 0) & (r_norm != 0)
    val[divide] /= (h_norm * r_norm)[divide]
    bigrams = np.maximum(table.lengths - 1, 0)  # bigram occurrences of each sentence
    delta = bigrams[grams.hyp_sentence][grams.ref_image] - bigrams[grams.ref_sentence]  # (R,)
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
