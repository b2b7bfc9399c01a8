"""Tokenized captions as integer token ids, shared by the caption scorers.

BLEU and CIDEr-D split a tokenized caption with `str.split()` (any whitespace), ROUGE-L with `split(" ")` (single
spaces; "" gives one empty token); see docs/evaluation.md, "Captioning (`eval-caption`)". For PTB output the two
agree except on empty captions and on tokens that hold a no-break space ("1\\u00a01/2"). `split_lines` splits all
captions of an evaluation both ways with two `split` calls on the joined text instead of two per caption, and interns
the tokens once when the splits agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, count

import numpy as np

_END = "\x00"  # marks the end of each line in the joined text; never whitespace, so both splits keep it as a token


@dataclass(frozen=True)
class TokenIds:
    """Sentences as integer token ids.

    Attributes:
        ids: (T,) token ids of all sentences, concatenated, in [0, vocab_size).
        lengths: (S,) number of tokens of each sentence.
        vocab_size: Number of distinct tokens.
    """

    ids: np.ndarray
    lengths: np.ndarray
    vocab_size: int

    def select(self, sentences: np.ndarray) -> TokenIds:
        """The given sentences (indices, in that order), with the same token ids.

        Args:
            sentences: (S',) sentence indices.

        Returns:
            Their token ids, concatenated.
        """
        lengths = self.lengths[sentences]
        offsets = np.cumsum(self.lengths) - self.lengths  # where each sentence starts in ids
        shift = offsets[sentences] - (np.cumsum(lengths) - lengths)  # (S',) old start - new start
        index = np.repeat(shift, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)
        return TokenIds(self.ids[index], lengths, self.vocab_size)


def intern_tokens(sentences: Sequence[Sequence[str]]) -> TokenIds:
    """Token ids of tokenized sentences (ids in order of first occurrence).

    Args:
        sentences: S token sequences.

    Returns:
        Their token ids.
    """
    lengths = np.fromiter(map(len, sentences), np.int64, count=len(sentences))
    ids, vocab_size = _intern(list(chain.from_iterable(sentences)))
    return TokenIds(ids, lengths, vocab_size)


def _intern(tokens: list[str]) -> tuple[np.ndarray, int]:
    """(T,) ids of the tokens (in order of first occurrence) and the number of distinct tokens."""
    vocab = dict(zip(dict.fromkeys(tokens), count()))
    return np.fromiter(map(vocab.__getitem__, tokens), np.int64, count=len(tokens)), len(vocab)


def split_lines(lines: Sequence[str]) -> tuple[TokenIds, TokenIds]:
    """Token ids of each line split as BLEU / CIDEr-D do (`str.split()`) and as ROUGE-L does (`split(" ")`).

    Args:
        lines: Tokenized captions.

    Returns:
        (whitespace tokens, single-space tokens), each with its own token ids (usually the same ones: the
        single-space tokens are derived from the others when the splits differ only on empty lines).
    """
    text = f" {_END} " + f" {_END} ".join(lines) + f" {_END} "  # every line between " <end> " markers
    if text.count(_END) != len(lines) + 1:  # a line holds the marker itself: line by line
        return intern_tokens([line.split() for line in lines]), intern_tokens([line.split(" ") for line in lines])
    words = _from_marked(text.split())
    if _spaces_are_single(text, int(np.count_nonzero(words.lengths == 0))):
        return words, _with_empty_tokens(words)
    return words, _from_marked(text[1:-1].split(" "))


_OTHER_ASCII_SPACES = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_OTHER_SPACE = re.compile(r"[^\S ]")


def _spaces_are_single(text: str, num_empty: int) -> bool:
    """Whether the two splits agree on every line but the empty ones: no whitespace but " ", and no double space
    except the one between the markers around an empty line."""
    if text.isascii():
        if any(c in text for c in _OTHER_ASCII_SPACES):
            return False
    elif _OTHER_SPACE.search(text) is not None:
        return False
    return "   " not in text and text.count("  ") == num_empty


def _with_empty_tokens(words: TokenIds) -> TokenIds:
    """The `split(" ")` tokens when they differ from the whitespace tokens only on empty lines (one empty token)."""
    empty = np.flatnonzero(words.lengths == 0)
    if empty.size == 0:
        return words
    starts = np.cumsum(words.lengths) - words.lengths
    lengths = words.lengths.copy()
    lengths[empty] = 1
    return TokenIds(np.insert(words.ids, starts[empty], words.vocab_size), lengths, words.vocab_size + 1)


def _from_marked(tokens: list[str]) -> TokenIds:
    """Token ids of the lines from the tokens of the marked text (a marker first and after each line)."""
    ids, vocab_size = _intern(tokens)  # the marker is the first token: id 0
    is_end = ids == 0
    lengths = np.diff(np.flatnonzero(is_end)) - 1
    return TokenIds(ids[~is_end] - 1, lengths, vocab_size - 1)
