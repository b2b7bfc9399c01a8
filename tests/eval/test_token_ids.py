"""Token ids shared by the caption scorers: `split_lines` equals splitting each line by `split()` and `split(" ")`."""

from __future__ import annotations

import random

import numpy as np

from vlkd_cli.eval.token_ids import TokenIds, intern_tokens, split_lines

# Pieces of lines: PTB-like tokens, empty lines, double / leading / trailing spaces, other whitespace (tab, no-break
# space inside a token as in "1\u00a01/2"), the joined text's line marker itself, non-ASCII.
PIECES = ["a", "dog", "cc", "", " ", "  ", "\u00a0", "\t", "1\u00a01/2", "\x00", "\u00e9t\u00e9"]


def _decoded(tokens: TokenIds) -> list[list[int]]:
    ends = np.cumsum(tokens.lengths).tolist()
    return [tokens.ids[end - length : end].tolist() for end, length in zip(ends, tokens.lengths.tolist())]


def _check_ids(tokens: TokenIds, expected: list[list[str]]) -> None:
    """Same lengths as `expected`, and ids that are a one-to-one renaming of its strings."""
    assert tokens.lengths.tolist() == [len(e) for e in expected]
    names: dict[str, int] = {}
    for strings, ids in zip(expected, _decoded(tokens)):
        for s, i in zip(strings, ids):
            assert names.setdefault(s, i) == i
    assert len(set(names.values())) == len(names)
    assert all(0 <= i < tokens.vocab_size for i in tokens.ids.tolist())


def test_split_lines_equals_splitting_each_line():
    rng = random.Random(3)
    for trial in range(3000):
        lines = ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 6))) for _ in range(rng.randint(0, 7))]
        if trial % 3:
            lines = [line.replace("\x00", "z") for line in lines]
        if trial % 2:  # PTB output: single spaces between tokens, empty lines
            lines = [" ".join(line.split()) for line in lines]
        words, pieces = split_lines(lines)
        _check_ids(words, [line.split() for line in lines])
        _check_ids(pieces, [line.split(" ") for line in lines])


def test_split_lines_of_ptb_output_share_the_ids():
    words, pieces = split_lines(["a dog", "", "a cat", ""])
    assert words.lengths.tolist() == [2, 0, 2, 0] and pieces.lengths.tolist() == [2, 1, 2, 1]
    assert pieces.ids.tolist() == [0, 1, 3, 0, 2, 3] and words.ids.tolist() == [0, 1, 0, 2]
    words, pieces = split_lines(["a b", "b"])
    assert pieces is words  # no empty line: the same tokens


def test_select_and_intern():
    tokens = intern_tokens([["a", "b"], [], ["b", "c", "a"]])
    assert tokens.ids.tolist() == [0, 1, 1, 2, 0] and tokens.vocab_size == 3
    picked = tokens.select(np.array([2, 1, 0]))
    assert picked.ids.tolist() == [1, 2, 0, 0, 1] and picked.lengths.tolist() == [3, 0, 2]
