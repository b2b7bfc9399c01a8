"""`min_length` of greedy and beam search: [SEP] banned while fewer than `min_length` tokens would result (it counts
[SEP], as `max_length` does); `min_length == max_length` = every row runs exactly `max_length` steps."""

from __future__ import annotations

import itertools
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from vlkd_cli.models import beam_search, greedy_search

from . import toy
from .test_decoding import BOS, EOS, VOCAB, ToyLM

WORDS = [t for t in range(VOCAB) if t not in (BOS, EOS)]


def _greedy(lm, batch_size: int, max_length: int, **kwargs):
    return greedy_search(lm, batch_size, bos_token_id=BOS, eos_token_id=EOS, max_length=max_length, **kwargs)


def _beam(lm, batch_size: int, beam_size: int, max_length: int, **kwargs):
    return beam_search(lm, batch_size, bos_token_id=BOS, eos_token_id=EOS, beam_size=beam_size,
                       max_length=max_length, **kwargs)  # fmt: skip


def _sep_after_one_word(batch_size: int) -> ToyLM:
    lm = ToyLM(batch_size=batch_size)
    lm.by_last[1:, :, EOS] = 50.0  # from the second token on, [SEP] is all but certain
    lm.by_last[0, :, EOS] = -50.0
    return lm


def test_fixed_length_decodes_every_row_to_max_length_without_early_stop() -> None:
    lm = _sep_after_one_word(3)
    assert [len(ids) for ids in _greedy(lm, 3, 6, banned_token_ids=[BOS]).token_ids] == [1, 1, 1]  # the default stops
    lm.calls = 0
    greedy = _greedy(lm, 3, 6, banned_token_ids=[BOS], min_length=6)
    assert lm.calls == 6 and [len(ids) for ids in greedy.token_ids] == [5, 5, 5]  # 5 words + [SEP] (stripped)
    assert all(EOS not in ids and BOS not in ids for ids in greedy.token_ids)
    lm.calls = 0
    beam = _beam(lm, 3, 3, 6, banned_token_ids=[BOS], min_length=6)
    assert lm.calls == 6 and [len(ids) for ids in beam.token_ids] == [5, 5, 5]
    lm.by_last[:, :, EOS] = -50.0  # [SEP] never likely: rows end at max_length without it
    lm.calls = 0
    assert [len(ids) for ids in _greedy(lm, 3, 6, banned_token_ids=[BOS], min_length=6).token_ids] == [6, 6, 6]
    assert lm.calls == 6


def test_min_length_below_max_length_lets_sep_end_the_sequence_from_then_on() -> None:
    lm = _sep_after_one_word(2)
    greedy = _greedy(lm, 2, 10, banned_token_ids=[BOS], min_length=3)
    assert lm.calls == 3 and [len(ids) for ids in greedy.token_ids] == [2, 2]  # [w, w, SEP], SEP stripped
    lm.calls = 0
    beam = _beam(lm, 2, 3, 10, banned_token_ids=[BOS], min_length=3)
    assert [len(ids) for ids in beam.token_ids] == [2, 2] and lm.calls < 10


def test_min_length_zero_or_one_is_the_default_behaviour() -> None:
    lm = ToyLM(batch_size=4, seed=5, eos_bias=2.0)
    default = _greedy(lm, 4, 6, banned_token_ids=[BOS])
    assert any(len(ids) < 5 for ids in default.token_ids)  # some rows stop early
    for min_length in (0, 1):
        result = _greedy(lm, 4, 6, banned_token_ids=[BOS], min_length=min_length)
        assert result.token_ids == default.token_ids and torch.equal(result.scores, default.scores)


@pytest.mark.parametrize("length", [2, 3, 5])
def test_fixed_length_greedy_is_sep_banned_greedy_then_one_free_step(length: int) -> None:
    """The first `length - 1` greedy tokens are those of a decoding that never allows [SEP]."""
    lm = ToyLM(batch_size=4, seed=3, eos_bias=2.0)
    fixed = _greedy(lm, 4, length, banned_token_ids=[BOS], min_length=length)
    banned = _greedy(lm, 4, length - 1, banned_token_ids=[BOS, EOS])
    assert [ids[: length - 1] for ids in fixed.token_ids] == banned.token_ids


def _log_prob(lm: ToyLM, row: int, sequence: list[int], min_length: int) -> float:
    """Log-probability with [BOS] banned everywhere and [SEP] banned (renormalised away) before `min_length`."""
    total, prefix = 0.0, [BOS]
    for step, token in enumerate(sequence, start=1):
        logits = lm(torch.tensor([prefix]), torch.tensor([row]))
        logits[:, BOS] = float("-inf")
        if step < min_length:
            logits[:, EOS] = float("-inf")
        total += F.log_softmax(logits, -1)[0, token].item()
        prefix.append(token)
    return total


def _exhaustive(lm: ToyLM, row: int, min_length: int, max_length: int, length_penalty: float):
    """Best sequence ending with [SEP] at a length in [max(min_length, 1), max_length], or reaching max_length."""
    best, best_score = None, float("-inf")
    for length in range(max(min_length, 1), max_length + 1):
        for words in itertools.product(WORDS, repeat=length - 1):
            for last in [EOS] if length < max_length else [EOS, *WORDS]:
                sequence = [*words, last]
                score = _log_prob(lm, row, sequence, min_length) / length**length_penalty
                if score > best_score:
                    best, best_score = sequence, score
    return [t for t in best if t != EOS], best_score


@pytest.mark.parametrize("min_length", [2, 3])
def test_unpruned_beam_with_min_length_equals_exhaustive_search(min_length: int) -> None:
    lm = ToyLM(batch_size=3, seed=4, eos_bias=3.0)  # [SEP] likely: the constraint matters
    result = _beam(lm, 3, 9, 3, banned_token_ids=[BOS], min_length=min_length, length_penalty=1.0)
    unconstrained = _beam(lm, 3, 9, 3, banned_token_ids=[BOS], length_penalty=1.0)
    assert any(len(ids) < min_length - 1 for ids in unconstrained.token_ids)  # the default would end sooner
    for row in range(3):
        ids, score = _exhaustive(lm, row, min_length, 3, 1.0)
        assert result.token_ids[row] == ids
        assert result.scores[row].item() == pytest.approx(score, abs=1e-5)


@pytest.mark.parametrize(("min_length", "max_length"), [(-1, 4), (5, 4)])
def test_min_length_out_of_range_is_refused(min_length: int, max_length: int) -> None:
    lm = ToyLM(batch_size=1)
    with pytest.raises(ValueError, match="min_length"):
        _greedy(lm, 1, max_length, min_length=min_length)
    with pytest.raises(ValueError, match="min_length"):
        _beam(lm, 1, 2, max_length, min_length=min_length)


@pytest.mark.parametrize("beam_size", [1, 2])
def test_caption_model_fixed_length_decoding(beam_size: int) -> None:
    """A real caption model's step function: every row gets exactly `max_length` tokens, none special."""
    model = toy.model("caption")
    batch = toy.batch(texts=None, tags=[["cube"], ["table"], []], mask_type="seq2seq")
    ids = model.special_token_ids
    step = partial(model.next_token_logits, batch)
    kwargs = {"bos_token_id": ids["cls"], "eos_token_id": ids["sep"], "max_length": 7, "min_length": 7,
              "banned_token_ids": [ids["pad"], ids["cls"], ids["mask"]]}  # fmt: skip
    result = greedy_search(step, 3, **kwargs) if beam_size == 1 else beam_search(step, 3, beam_size=2, **kwargs)
    assert all(len(row) in (6, 7) for row in result.token_ids)  # 7 steps; the 7th may be [SEP] (stripped)
    assert not set(ids.values()) & {t for row in result.token_ids for t in row}
    calls = []
    counted = lambda prefix, rows: calls.append(len(rows)) or step(prefix, rows)
    greedy_search(counted, 3, **kwargs) if beam_size == 1 else beam_search(counted, 3, beam_size=2, **kwargs)
    assert len(calls) == 7 and set(calls) == {3 * beam_size}  # every row alive at every step
