"""Masked language modelling for pre-training (BERT / Oscar): 15% of the text tokens, 80/10/10.

Caption and tag tokens may be masked (Oscar masks both segments of its text); [CLS], [SEP], [PAD] and invalid
positions never are. Of the chosen tokens 80% become [MASK], 10% a uniformly random token, 10% stay unchanged; the
loss is the cross-entropy at the chosen positions only. The head is `TiedLMHead`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = -100


def mask_tokens(
    input_ids: Tensor,
    maskable: Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Choose and corrupt tokens for MLM.

    Args:
        input_ids: (B, T) token ids.
        maskable: (B, T) bool positions that may be chosen (valid, not special).
        mask_token_id: The [MASK] id.
        vocab_size: Random replacements are drawn from [0, vocab_size).
        probability: Chance of each maskable token to be chosen.
        generator: CPU generator for reproducible draws (global RNG if None).

    Returns:
        corrupted ids (B, T) and labels (B, T): the original id at chosen positions, -100 elsewhere.
    """
    shape = input_ids.shape
    draws = torch.rand((3, *shape), generator=generator).to(input_ids.device)  # (3, B, T) choose / [MASK] / random
    chosen = maskable & (draws[0] < probability)
    to_mask = chosen & (draws[1] < 0.8)
    to_random = chosen & ~to_mask & (draws[2] < 0.5)
    random_ids = torch.randint(vocab_size, shape, generator=generator).to(input_ids.device)
    corrupted = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    corrupted = torch.where(to_random, random_ids, corrupted)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return corrupted, labels


def maskable_positions(input_ids: Tensor, text_mask: Tensor, special_ids: Sequence[int]) -> Tensor:
    """(B, T) bool: valid text tokens that are not special ([CLS], [SEP], [PAD], ...)."""
    special = torch.isin(input_ids, torch.tensor(list(special_ids), device=input_ids.device))
    return text_mask & ~special


def mlm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over the chosen positions.

    Args:
        logits: (M, V) logits at the chosen positions.
        labels: (M,) original ids.

    Returns:
        Scalar (0 with a gradient path when nothing was chosen).
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels)
