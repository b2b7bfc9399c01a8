"""Batched greedy and beam-search decoding over a next-token function, with or without cached state.

A step function maps the current prefixes to next-token logits::

    step_fn(prefix: (M, t) long, rows: (M,) long) -> (M, V) logits

`prefix` starts with the start token ([CLS]); `rows` says which input row (image) each prefix belongs to, so a
caption model can pair it with that row's regions and tags. Such a function re-runs the model on the whole prefix
at every step (full recomputation).

A cached step function (`CachedStepFn`: `start`, `step`, `select`) keeps a state per hypothesis instead, e.g. a
caption model's cached keys/values (`kv_cache.py`): `start(rows)` encodes what every step reuses, each step feeds
only the newest token, and `select` follows the hypotheses as rows finish and beams are chosen. Both kinds give the
same tokens; the search below is the same code for both.

Scores are sums of log-probabilities divided by `length ** length_penalty`, where length counts the generated tokens
including the end token ([SEP]); a hypothesis also ends, without [SEP], when it reaches `max_length` tokens.

`min_length` (default 0: no constraint, the behaviour above) bans [SEP] while the sequence would be shorter than
`min_length` tokens ([SEP] counted, like `max_length`; Hugging Face `generate`'s `min_length` does the same), and the
ban renormalises the other tokens' probabilities. `min_length == max_length` gives fixed-length decoding: every row
runs exactly `max_length` steps with no early stop (the last token may be [SEP]), so two models do the same number
of forward passes (what `vlkd benchmark-latency --decode-length` needs for a fair timing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

StepFn = Callable[[Tensor, Tensor], Tensor]


@runtime_checkable
class CachedStepFn(Protocol):
    """Next-token logits from a per-hypothesis state that grows by the newest token (see the module docstring)."""

    def start(self, rows: Tensor) -> Any:
        """The state of M hypotheses of input rows `rows` (M,) long, nothing fed yet."""

    def step(self, state: Any, tokens: Tensor) -> Tensor:
        """Feed (M, n) tokens, the next n of each hypothesis (the state grows in place) -> (M, V) logits after them."""

    def select(self, state: Any, index: Tensor) -> Any:
        """The state of hypotheses `index` (M',) long of `state`, in that order (repeats allowed)."""


class _Stepper:
    """Calls a step function of either kind: whole prefixes, or only the newest tokens of the surviving hypotheses.

    `parents` (M,) long gives, for each prefix, the hypothesis of the previous call that it extends by one token
    (None at the first call); a full step function ignores it.
    """

    def __init__(self, step_fn: StepFn | CachedStepFn) -> None:
        self.step_fn = step_fn
        self.cached = isinstance(step_fn, CachedStepFn)
        self.state: Any = None

    def __call__(self, prefix: Tensor, rows: Tensor, parents: Tensor | None) -> Tensor:
        if not self.cached:
            return self.step_fn(prefix, rows)
        if parents is None:
            self.state = self.step_fn.start(rows)
            return self.step_fn.step(self.state, prefix)  # (M, V) after the whole (start) prefix
        self.state = self.step_fn.select(self.state, parents)
        return self.step_fn.step(self.state, prefix[:, -1:])


@dataclass
class DecodeResult:
    """Decoded sequences.

    Attributes:
        token_ids: Per input row, the generated ids without the start token and without the final [SEP].
        scores: (B,) length-normalised log-probability of each returned sequence.
        texts: Decoded strings when a tokenizer was given, else None.
    """

    token_ids: list[list[int]]
    scores: Tensor
    texts: list[str] | None = None


def sequence_score(sum_logprob: Tensor | float, length: int, length_penalty: float) -> Tensor | float:
    """Length-normalised score: sum of log-probabilities / length ** length_penalty."""
    return sum_logprob / float(length) ** length_penalty


def decode_texts(tokenizer: PreTrainedTokenizerFast, token_ids: Sequence[Sequence[int]]) -> list[str]:
    """Strings of generated ids (special tokens skipped, WordPiece pieces joined)."""
    return [tokenizer.decode(list(ids), skip_special_tokens=True).strip() for ids in token_ids]


def _log_probs(logits: Tensor, banned_token_ids: Sequence[int]) -> Tensor:
    """(M, V) logits -> (M, V) float32 log-probabilities over the allowed tokens (banned ones at -inf)."""
    logits = logits.float()
    if banned_token_ids:
        logits = logits.clone()
        logits[:, list(banned_token_ids)] = float("-inf")
    return F.log_softmax(logits, dim=-1)


def _strip_end(ids: list[int], eos_token_id: int) -> list[int]:
    return ids[:-1] if ids and ids[-1] == eos_token_id else ids


def _check_lengths(max_length: int, beam_size: int = 1, min_length: int = 0) -> None:
    if max_length < 1 or beam_size < 1:
        raise ValueError(f"need max_length >= 1 and beam_size >= 1, got {max_length} and {beam_size}")
    if not 0 <= min_length <= max_length:
        raise ValueError(f"need 0 <= min_length <= max_length, got min_length={min_length}, max_length={max_length}")


def _banned_at(step: int, banned_token_ids: Sequence[int], eos_token_id: int, min_length: int) -> list[int]:
    """Tokens banned when generating token number `step` (1-based): [SEP] too while `step < min_length`."""
    banned = list(banned_token_ids)
    if step < min_length and eos_token_id not in banned:
        banned.append(eos_token_id)
    return banned


@torch.no_grad()
def greedy_search(
    step_fn: StepFn | CachedStepFn,
    batch_size: int,
    *,
    bos_token_id: int,
    eos_token_id: int,
    max_length: int,
    length_penalty: float = 1.0,
    banned_token_ids: Sequence[int] = (),
    device: torch.device | str = "cpu",
    min_length: int = 0,
) -> DecodeResult:
    """Pick the most likely token at each step until [SEP] or `max_length` generated tokens.

    Args:
        step_fn: A step function or a cached one (see the module docstring).
        batch_size: B input rows.
        bos_token_id: Start token ([CLS]).
        eos_token_id: End token ([SEP]).
        max_length: Maximum number of generated tokens, [SEP] included.
        length_penalty: Only for the reported scores.
        banned_token_ids: Tokens never generated (e.g. [PAD], [CLS], [MASK]).
        device: Device of the prefixes handed to `step_fn`.
        min_length: [SEP] may only be token number `min_length` or later (0: no constraint; `max_length`: every row
            runs exactly `max_length` steps).
    """
    _check_lengths(max_length, min_length=min_length)
    prefix = torch.full((batch_size, 1), bos_token_id, dtype=torch.long, device=device)  # (B, t)
    alive = torch.ones(batch_size, dtype=torch.bool, device=device)
    sums = torch.zeros(batch_size, device=device)
    lengths = torch.zeros(batch_size, dtype=torch.long, device=device)
    stepper, parents = _Stepper(step_fn), None
    for step in range(1, max_length + 1):
        rows = torch.nonzero(alive).squeeze(1)  # (M,)
        banned = _banned_at(step, banned_token_ids, eos_token_id, min_length)
        logp = _log_probs(stepper(prefix[rows], rows, parents), banned).to(device)  # (M, V)
        best, token = logp.max(dim=-1)  # (M,), (M,)
        sums[rows] += best
        lengths[rows] += 1
        column = torch.full((batch_size,), eos_token_id, dtype=torch.long, device=device)
        column[rows] = token
        prefix = torch.cat([prefix, column[:, None]], dim=1)
        alive[rows[token == eos_token_id]] = False
        parents = torch.nonzero(token != eos_token_id).squeeze(1)  # (M',) the rows still alive, among `rows`
        if not alive.any():
            break
    token_ids = [_strip_end(prefix[b, 1 : 1 + int(lengths[b])].tolist(), eos_token_id) for b in range(batch_size)]
    scores = torch.stack([sequence_score(sums[b], int(lengths[b]), length_penalty) for b in range(batch_size)])
    return DecodeResult(token_ids=token_ids, scores=scores.cpu())


def _optimistic_score(sums: Tensor, length: int, max_length: int, length_penalty: float) -> Tensor:
    """Upper bound of the final score of alive beams with log-prob `sums` (B, k) after `length` tokens.

    Future log-probabilities are <= 0, so the sum can only fall; the normalised score is then largest at one of the
    two ends of the remaining lengths.
    """
    if length >= max_length:
        return torch.full_like(sums, float("-inf"))
    at_next = sequence_score(sums, length + 1, length_penalty)
    at_max = sequence_score(sums, max_length, length_penalty)
    return torch.maximum(at_next, at_max)


@torch.no_grad()
def beam_search(
    step_fn: StepFn | CachedStepFn,
    batch_size: int,
    *,
    bos_token_id: int,
    eos_token_id: int,
    beam_size: int,
    max_length: int,
    length_penalty: float = 1.0,
    banned_token_ids: Sequence[int] = (),
    device: torch.device | str = "cpu",
    min_length: int = 0,
) -> DecodeResult:
    """Beam search returning the best finished hypothesis of each row.

    Each step extends the `beam_size` alive hypotheses by every token; the continuations that end with [SEP] are
    finished (scored with the length penalty), the best `beam_size` others stay alive. Hypotheses reaching
    `max_length` tokens finish without [SEP]. A row stops early once no alive beam can still beat its best finished
    hypothesis. With `beam_size` >= the number of possible continuations, no hypothesis is ever pruned and the
    result is the exhaustive optimum.

    Args:
        step_fn: A step function or a cached one (see the module docstring).
        batch_size: B input rows.
        bos_token_id: Start token ([CLS]).
        eos_token_id: End token ([SEP]).
        beam_size: k alive hypotheses per row.
        max_length: Maximum number of generated tokens, [SEP] included.
        length_penalty: Exponent of the length normalisation (0 = raw log-probability).
        banned_token_ids: Tokens never generated.
        device: Device of the prefixes handed to `step_fn`.
        min_length: No hypothesis ends with [SEP] as a token before number `min_length` (0: no constraint;
            `max_length`: every hypothesis runs `max_length` steps, no early stop).
    """
    _check_lengths(max_length, beam_size, min_length)
    k = beam_size
    seqs = torch.full((batch_size, k, 1), bos_token_id, dtype=torch.long, device=device)  # (B, k, t)
    sums = torch.full((batch_size, k), float("-inf"), device=device)  # (B, k)
    sums[:, 0] = 0.0  # one real start hypothesis per row
    best_score = torch.full((batch_size,), float("-inf"), device=device)
    best_ids: list[list[int]] = [[] for _ in range(batch_size)]
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    stepper, parents = _Stepper(step_fn), None

    def offer(rows: Tensor, scores: Tensor, hypotheses: Tensor, ending: list[int]) -> None:
        """Keep, per row, the best of the (A, k) finished `scores` if it beats the row's best so far."""
        score, j = scores.max(dim=1)  # (A,)
        for a, row in enumerate(rows.tolist()):
            if torch.isfinite(score[a]) and score[a] > best_score[row]:
                best_score[row] = score[a]
                best_ids[row] = hypotheses[a, int(j[a]), 1:].tolist() + ending

    for length in range(1, max_length + 1):
        rows = torch.nonzero(~done).squeeze(1)  # (A,)
        prefix = seqs[rows].reshape(-1, seqs.shape[-1])  # (A*k, t)
        banned = _banned_at(length, banned_token_ids, eos_token_id, min_length)
        logp = _log_probs(stepper(prefix, rows.repeat_interleave(k), parents), banned).to(device)  # (A*k, V)
        vocab = logp.shape[-1]
        cand = sums[rows][:, :, None] + logp.reshape(len(rows), k, vocab)  # (A, k, V)
        offer(rows, sequence_score(cand[:, :, eos_token_id], length, length_penalty), seqs[rows], [eos_token_id])
        cand[:, :, eos_token_id] = float("-inf")
        top_sums, top_index = cand.reshape(len(rows), k * vocab).topk(k, dim=-1)  # (A, k)
        beam, token = top_index // vocab, top_index % vocab
        kept = torch.gather(seqs[rows], 1, beam[:, :, None].expand(-1, -1, seqs.shape[-1]))  # (A, k, t)
        grown = torch.full((batch_size, k, seqs.shape[-1] + 1), eos_token_id, dtype=torch.long, device=device)
        grown[rows] = torch.cat([kept, token[:, :, None]], dim=-1)
        seqs = grown
        sums[rows] = top_sums
        if length == max_length:  # the alive hypotheses end here without [SEP]
            offer(rows, sequence_score(top_sums, length, length_penalty), seqs[rows], [])
            break
        bound = _optimistic_score(sums, length, max_length, length_penalty).max(dim=1).values  # (B,)
        done |= best_score >= bound
        # Hypothesis j of an active row a of this call extends hypothesis (a, beam[a, j]), i.e. a * k + beam[a, j].
        going_on = torch.nonzero(~done[rows]).squeeze(1)  # (A',) the rows of this call that go on
        parents = (going_on[:, None] * k + beam[going_on]).reshape(-1)  # (A' * k,)
        if done.all():
            break
    token_ids = [_strip_end(ids, eos_token_id) for ids in best_ids]
    return DecodeResult(token_ids=token_ids, scores=best_score.cpu())
