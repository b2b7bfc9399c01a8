"""Greedy and beam search on a toy LM (exhaustive check), stopping rules, and captioning end to end."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from vlkd_cli.models import beam_search, greedy_search
from vlkd_cli.models.caption_head import next_token_targets

from . import toy

BOS, EOS, VOCAB = 0, 1, 5  # tokens 2, 3, 4 are words; BOS is banned from generation


class ToyLM:
    """Deterministic next-token logits depending on the step, the last two tokens and the input row."""

    def __init__(self, batch_size: int, seed: int = 0, eos_bias: float = 0.0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.by_last = 2.0 * torch.randn(8, VOCAB, VOCAB, generator=g)  # (step, last token, next)
        self.by_before = torch.randn(VOCAB, VOCAB, generator=g)
        self.by_row = torch.randn(batch_size, VOCAB, generator=g)
        self.by_row[:, EOS] += eos_bias
        self.calls = 0

    def __call__(self, prefix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        step = prefix.shape[1] - 1
        logits = self.by_last[step, prefix[:, -1]] + self.by_row[rows]
        if prefix.shape[1] >= 2:
            logits = logits + self.by_before[prefix[:, -2]]
        return logits

    def log_prob(self, row: int, sequence: list[int]) -> float:
        total, prefix = 0.0, [BOS]
        for token in sequence:
            logits = self(torch.tensor([prefix]), torch.tensor([row]))
            logits[:, BOS] = float("-inf")
            total += F.log_softmax(logits, -1)[0, token].item()
            prefix.append(token)
        return total


def exhaustive(lm: ToyLM, row: int, max_length: int, length_penalty: float) -> tuple[list[int], float]:
    """Best sequence over all that end with EOS within max_length, or reach max_length without EOS."""
    best, best_score = None, float("-inf")
    for length in range(1, max_length + 1):
        for words in itertools.product([2, 3, 4], repeat=length - 1):
            for last in [EOS] if length < max_length else [EOS, 2, 3, 4]:
                sequence = [*words, last]
                score = lm.log_prob(row, sequence) / length**length_penalty
                if score > best_score:
                    best, best_score = sequence, score
    return [t for t in best if t != EOS], best_score


def _beam(lm: ToyLM, batch_size: int, beam_size: int, max_length: int, length_penalty: float):
    return beam_search(lm, batch_size, bos_token_id=BOS, eos_token_id=EOS, beam_size=beam_size,
                       max_length=max_length, length_penalty=length_penalty, banned_token_ids=[BOS])  # fmt: skip


@pytest.mark.parametrize("length_penalty", [0.0, 0.6, 1.0])
def test_beam_of_vocab_size_equals_exhaustive_search(length_penalty: float) -> None:
    lm = ToyLM(batch_size=4)
    result = _beam(lm, 4, beam_size=VOCAB, max_length=2, length_penalty=length_penalty)
    for row in range(4):
        ids, score = exhaustive(lm, row, 2, length_penalty)
        assert result.token_ids[row] == ids
        assert result.scores[row].item() == pytest.approx(score, abs=1e-5)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_unpruned_beam_equals_exhaustive_search_on_longer_sequences(length_penalty: float) -> None:
    lm = ToyLM(batch_size=3, seed=1)
    result = _beam(lm, 3, beam_size=9, max_length=3, length_penalty=length_penalty)  # 3^2 alive: nothing pruned
    for row in range(3):
        assert result.token_ids[row] == exhaustive(lm, row, 3, length_penalty)[0]


def test_beam_escapes_the_greedy_trap() -> None:
    """Word 2 is slightly likelier first but leads to a flat distribution; word 3 leads to a certain [SEP]."""

    def trap(prefix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        logits = torch.full((prefix.shape[0], VOCAB), -20.0)
        last = prefix[:, -1]
        logits[last == BOS, 2], logits[last == BOS, 3] = 1.0, 0.9
        logits[last == 2, 1:] = 0.0  # [SEP], 2, 3, 4 equally likely
        logits[last == 3, EOS] = 20.0
        logits[last == 4, EOS] = 20.0
        return logits

    greedy = greedy_search(trap, 1, bos_token_id=BOS, eos_token_id=EOS, max_length=2, length_penalty=0.0)
    beam = beam_search(trap, 1, bos_token_id=BOS, eos_token_id=EOS, beam_size=2, max_length=2, length_penalty=0.0)
    assert greedy.token_ids[0][0] == 2 and beam.token_ids == [[3]]
    assert beam.scores[0] > greedy.scores[0]


def test_beam_of_one_is_greedy() -> None:
    lm = ToyLM(batch_size=5, seed=2)
    greedy = greedy_search(lm, 5, bos_token_id=BOS, eos_token_id=EOS, max_length=4, banned_token_ids=[BOS])
    assert _beam(lm, 5, beam_size=1, max_length=4, length_penalty=1.0).token_ids == greedy.token_ids


def test_decoding_stops_at_sep() -> None:
    lm = ToyLM(batch_size=2)
    lm.by_last[1, :, EOS] = 50.0  # after one word, [SEP] is certain
    lm.by_last[0, :, EOS] = -50.0
    greedy = greedy_search(lm, 2, bos_token_id=BOS, eos_token_id=EOS, max_length=10, banned_token_ids=[BOS])
    assert [len(ids) for ids in greedy.token_ids] == [1, 1] and lm.calls == 2
    lm.calls = 0
    beam = _beam(lm, 2, beam_size=3, max_length=10, length_penalty=1.0)
    assert [len(ids) for ids in beam.token_ids] == [1, 1] and lm.calls < 10


def test_decoding_stops_at_max_length() -> None:
    lm = ToyLM(batch_size=2, eos_bias=-100.0)  # [SEP] never wins
    greedy = greedy_search(lm, 2, bos_token_id=BOS, eos_token_id=EOS, max_length=4, banned_token_ids=[BOS])
    beam = _beam(lm, 2, beam_size=3, max_length=4, length_penalty=1.0)
    for result in (greedy, beam):
        assert all(len(ids) == 4 and EOS not in ids and BOS not in ids for ids in result.token_ids)


def test_caption_decoding_matches_the_training_forward() -> None:
    """Prefix-LM: the logits decoding sees after a prefix are those of the teacher-forced forward pass."""
    model = toy.model("caption")
    batch = toy.batch(tags=[["cube"], ["table"], []], mask_type="seq2seq")
    _, out = model.forward_loss(batch, {}, return_outputs=True)
    target_mask, _ = next_token_targets(batch.caption_ids, batch.caption_mask)
    rows, positions = torch.nonzero(target_mask, as_tuple=True)
    for m in [0, 3, len(rows) - 1]:
        row, t = rows[m].item(), positions[m].item()
        prefix = batch.caption_ids[row : row + 1, : t + 1]
        step_logits = model.next_token_logits(batch, prefix, torch.tensor([row]))
        assert torch.allclose(step_logits[0], out.logits[m], atol=1e-4)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_caption_generate_returns_ids_and_strings(beam_size: int) -> None:
    model = toy.model("caption").train()
    batch = toy.batch(texts=None, tags=[["cube"], ["table"], []], mask_type="seq2seq")
    result = model.generate(batch, beam_size=beam_size, max_length=6, tokenizer=toy.tokenizer())
    assert model.training  # mode restored
    assert len(result.token_ids) == len(result.texts) == 3 and result.scores.shape == (3,)
    special = {0, 2, 3, 4}  # [PAD] [CLS] [SEP] [MASK]
    assert all(len(ids) <= 6 and not special & set(ids) for ids in result.token_ids)
    assert result.texts == [toy.tokenizer().decode(ids).strip() for ids in result.token_ids]


def test_caption_generate_refuses_lengths_past_the_caption_segment() -> None:
    with pytest.raises(ValueError, match="max_length"):
        toy.model("caption").generate(toy.batch(mask_type="seq2seq"), max_length=10)


def test_a_caption_model_learns_two_captions_and_decodes_them_back() -> None:
    """End to end: prefix-LM training on two images, then greedy and beam decoding give each image its caption."""
    model = toy.model("caption").train()
    texts = ["a red cube left of a blue sphere", "two green cylinders on a table"]
    batch = toy.batch(texts=texts, tags=[["cube"], ["table"]], num_regions=[3, 2], mask_type="seq2seq")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(80):
        loss = model.forward_loss(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1
    assert model.generate(batch, max_length=9, tokenizer=toy.tokenizer()).texts == texts
    assert model.generate(batch, beam_size=3, max_length=9, tokenizer=toy.tokenizer()).texts == texts
