"""ROUGE-L of the COCO caption evaluation, equal to pycocoevalcap 1.2's `Rouge().compute_score`.

Reproduces `pycocoevalcap/rouge/rouge.py` (R. Vedantam; salaniz/pycocoevalcap@ad63453 = tylin/coco-caption@3a9afb2),
see docs/evaluation.md, "Captioning (`eval-caption`)":

* tokens = `caption.split(" ")` (single spaces: an empty caption is one empty token, double spaces give empty
  tokens) — the official quirk, kept;
* for each reference j: LCS length l_j of hypothesis and reference tokens, P_j = l_j / len(hyp),
  R_j = l_j / len(ref_j); P = max_j P_j and R = max_j R_j taken independently;
* F = (1 + beta^2) P R / (R + beta^2 P) if P and R are both non-zero, else 0; beta = 1.2;
* corpus score = np.mean of the per-image F.

The official code fills an O(len_a * len_b) table per pair. Here the LCS length comes from the bit-parallel
algorithm of Allison & Dix (1986) in the formulation of Hyyrö (2004): with M[c] the bit mask of the positions of
token c in the hypothesis and V initially all ones, every reference token c does U = V & M[c];
V = (V + U) | (V - U); the LCS length is the number of zero bits of V (within the hypothesis length). All pairs
with a hypothesis of at most 64 tokens advance together in uint64 numpy arrays; longer hypotheses use Python ints.
The integers are the same as the table's, so the scores are bit-equal.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from itertools import chain
from typing import TypeVar

import numpy as np

from vlkd_cli.eval.cider import check_images
from vlkd_cli.eval.token_ids import TokenIds, intern_tokens

K = TypeVar("K", bound=Hashable)

_WORD_BITS = 64


def rouge_tokens(sentence: str | Sequence[str]) -> list[str]:
    """Tokens as the official ROUGE-L sees them: `split(" ")` of a string; a token list as given ([""] if empty).

    Args:
        sentence: A tokenized caption (string) or its tokens.

    Returns:
        The tokens.
    """
    if isinstance(sentence, str):
        return sentence.split(" ")
    return list(sentence) or [""]  # what split(" ") of the empty string gives


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (bit-parallel, Python ints).

    Args:
        a: First sequence (its positions become bits).
        b: Second sequence.

    Returns:
        The LCS length.
    """
    masks: dict[str, int] = {}
    for pos, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << pos)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def _popcount(values: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values).astype(np.int64)
    bits = np.unpackbits(values.view(np.uint8).reshape(-1, 8), axis=1)  # numpy < 2.0
    return bits.sum(axis=1).astype(np.int64)


def _lengths(sequences: Sequence[Sequence[str]]) -> np.ndarray:
    return np.fromiter(map(len, sequences), np.int64, count=len(sequences))


def _mask_table(hyp_tokens: np.ndarray, hyp_len: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit masks M[h, c] of the positions of token c in hypothesis h, as a sorted key table.

    Args:
        hyp_tokens: (Th,) token ids of all hypotheses, concatenated.
        hyp_len: (H,) their lengths; tokens at positions >= 64 are left out (those hypotheses use Python ints).
        vocab_size: Number of token ids.

    Returns:
        (keys h * vocab_size + c, sorted; uint64 masks), each (Kh,).
    """
    hyp = np.repeat(np.arange(hyp_len.size, dtype=np.int64), hyp_len)
    position = np.arange(hyp_tokens.size, dtype=np.int64) - np.repeat(np.cumsum(hyp_len) - hyp_len, hyp_len)
    keep = position < _WORD_BITS
    key = hyp[keep] * vocab_size + hyp_tokens[keep]
    order = np.argsort(key)  # the OR of a group does not depend on the order inside it
    key = key[order]
    bits = np.left_shift(np.uint64(1), position[keep][order].astype(np.uint64))
    if key.size == 0:
        return key, bits
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    return key[starts], np.bitwise_or.reduceat(bits, starts)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[keys == query] per query (keys sorted, unique), 0 where absent."""
    if keys.size == 0:
        return np.zeros(query.size, values.dtype)
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return np.where(keys[pos] == query, values[pos], values.dtype.type(0))


def _lcs_word(
    hyp_tokens: np.ndarray,
    hyp_len: np.ndarray,
    ref_tokens: np.ndarray,
    ref_len: np.ndarray,
    ref_hyp: np.ndarray,
    vocab_size: int,
) -> np.ndarray:
    """LCS lengths of many (hypothesis, reference) pairs at once, all advanced together in uint64 arrays.

    Args:
        hyp_tokens: (Th,) token ids of all hypotheses, concatenated.
        hyp_len: (H,) hypothesis lengths.
        ref_tokens: (Tr,) token ids of the references to score, concatenated.
        ref_len: (P,) their lengths.
        ref_hyp: (P,) hypothesis of each reference; each of these hypotheses has at most 64 tokens.
        vocab_size: Number of token ids.

    Returns:
        (P,) LCS lengths.
    """
    mask_keys, masks = _mask_table(hyp_tokens, hyp_len, vocab_size)
    num = ref_len.size
    ref_of_token = np.repeat(np.arange(num, dtype=np.int64), ref_len)  # (Tr,)
    step = np.arange(ref_tokens.size, dtype=np.int64) - np.repeat(np.cumsum(ref_len) - ref_len, ref_len)  # (Tr,)
    by_length = np.argsort(-ref_len)  # rank -> reference, longest first
    rank = np.empty(num, np.int64)
    rank[by_length] = np.arange(num)
    # Step-major, rank-minor: the references still running at step j are ranks 0..running_j - 1, a prefix, so the
    # token of rank r at step j goes to (tokens of the steps before j) + r.
    running = np.bincount(step, minlength=0)  # (max length,) references still running at each step
    slot = (np.cumsum(running) - running)[step] + rank[ref_of_token]  # (Tr,)
    token_mask = np.empty(ref_tokens.size, np.uint64)
    token_mask[slot] = _lookup(mask_keys, masks, ref_hyp[ref_of_token] * vocab_size + ref_tokens)
    running = running.tolist()
    m = hyp_len[ref_hyp[by_length]].astype(np.uint64)  # (P,) by rank
    full = np.where(m >= _WORD_BITS, ~np.uint64(0), (np.uint64(1) << np.minimum(m, 63)) - np.uint64(1))
    v = full.copy()
    offset = 0
    for width in running:
        head = v[:width]
        u = head & token_mask[offset : offset + width]
        v[:width] = (head + u) | (head - u)  # uint64 wraps around; the low m bits are exact
        offset += width
    lcs = np.empty(num, np.int64)
    lcs[by_length] = m.astype(np.int64) - _popcount(v & full)
    return lcs


def lcs_lengths(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]], ref_hyp: Sequence[int]) -> np.ndarray:
    """LCS length of every reference with its hypothesis.

    Args:
        hyps: H token sequences.
        refs: P token sequences.
        ref_hyp: (P,) index into `hyps` of the hypothesis each reference is compared with.

    Returns:
        (P,) LCS lengths.
    """
    tokens = intern_tokens([*hyps, *refs])
    num_hyps = len(hyps)
    hyp_ids = tokens.select(np.arange(num_hyps))
    ref_ids = tokens.select(np.arange(num_hyps, num_hyps + len(refs)))
    return _lcs_of_ids(hyp_ids, ref_ids, np.asarray(ref_hyp, dtype=np.int64).reshape(-1))


def _lcs_of_ids(hyps: TokenIds, refs: TokenIds, ref_hyp: np.ndarray) -> np.ndarray:
    """`lcs_lengths` of sentences given as token ids (one vocabulary): hypotheses of at most 64 tokens in uint64
    arrays, longer ones with Python ints."""
    hyp_len, ref_len = hyps.lengths, refs.lengths
    lcs = np.zeros(ref_len.size, np.int64)
    word = hyp_len[ref_hyp] <= _WORD_BITS if ref_len.size else np.zeros(0, dtype=bool)
    chosen = np.flatnonzero(word)
    if chosen.size:
        tokens = refs.ids[np.repeat(word, ref_len)]
        lcs[chosen] = _lcs_word(hyps.ids, hyp_len, tokens, ref_len[chosen], ref_hyp[chosen], hyps.vocab_size)
    hyp_start, ref_start = np.cumsum(hyp_len) - hyp_len, np.cumsum(ref_len) - ref_len
    for p in np.flatnonzero(~word).tolist():
        h = int(ref_hyp[p])
        hyp = hyps.ids[hyp_start[h] : hyp_start[h] + hyp_len[h]].tolist()
        lcs[p] = lcs_length(hyp, refs.ids[ref_start[p] : ref_start[p] + ref_len[p]].tolist())
    return lcs


def rouge_l_scores(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[Sequence[str]]], beta: float) -> np.ndarray:
    """ROUGE-L F of every image.

    Args:
        hyps: I hypotheses as `split(" ")` tokens.
        refs: Per image, its references as tokens (>= 1 each).
        beta: Recall weight.

    Returns:
        (I,) scores.
    """
    tokens = intern_tokens([*hyps, *chain.from_iterable(refs)])
    num_hyps = len(hyps)
    hyp_ids = tokens.select(np.arange(num_hyps))
    ref_ids = tokens.select(np.arange(num_hyps, tokens.lengths.size))
    return rouge_l_of_ids(hyp_ids, ref_ids, _lengths(refs), beta)


def rouge_l_of_ids(hyps: TokenIds, refs: TokenIds, num_refs: np.ndarray, beta: float) -> np.ndarray:
    """`rouge_l_scores` of sentences given as token ids (one vocabulary for both).

    Args:
        hyps: I hypotheses (`split(" ")` tokens).
        refs: The references, image by image.
        num_refs: (I,) number of references of each image (>= 1).
        beta: Recall weight.

    Returns:
        (I,) scores.
    """
    ref_hyp = np.repeat(np.arange(num_refs.size), num_refs)
    lcs = _lcs_of_ids(hyps, refs, ref_hyp).astype(np.float64)
    hyp_len = hyps.lengths.astype(np.float64)
    ref_len = refs.lengths.astype(np.float64)
    starts = np.cumsum(num_refs) - num_refs
    prec = np.maximum.reduceat(lcs / hyp_len[ref_hyp], starts)
    rec = np.maximum.reduceat(lcs / ref_len, starts)
    b2 = beta**2
    score = np.zeros(num_refs.size)
    ok = (prec != 0) & (rec != 0)
    score[ok] = ((1 + b2) * prec[ok] * rec[ok]) / (rec[ok] + b2 * prec[ok])
    return score


def rouge_l(
    refs: Mapping[K, Sequence[str | Sequence[str]]], hyps: Mapping[K, str | Sequence[str]], beta: float = 1.2
) -> tuple[float, dict[K, float]]:
    """ROUGE-L as pycocoevalcap's `Rouge().compute_score`.

    Args:
        refs: image id -> tokenized references (strings, split on single spaces, or token lists), >= 1 per image.
        hyps: image id -> tokenized hypothesis; same ids as `refs`.
        beta: Recall weight (1.2 in the official code).

    Returns:
        (corpus score = mean of the image scores, image id -> score).

    Raises:
        ValueError: Ids differ, no image is given, or an image has no reference.
    """
    ids = check_images(refs, hyps, "ROUGE-L")
    scores = rouge_l_scores(
        [rouge_tokens(hyps[i]) for i in ids], [[rouge_tokens(r) for r in refs[i]] for i in ids], beta
    )
    return float(np.mean(scores)), dict(zip(ids, scores.tolist()))
