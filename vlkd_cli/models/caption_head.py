"""Captioning objective: prefix language modelling on the seq2seq mask.

With Oscar's seq2seq mask a caption token sees the caption tokens up to itself plus all tags and regions, so the
hidden state at caption position t can predict token t + 1: every caption token is a target in one forward
(shifted cross-entropy over the valid caption tokens: [CLS] predicts the first word, ..., the last word predicts
[SEP]). Decoding appends the predicted token and computes the next one from the prefix, which is exactly the
training computation (incrementally: only the new token runs, over cached keys/values, see `kv_cache.py`).

This differs from Oscar's objective, which replaces 15% of the caption tokens by [MASK] and predicts them (the
decoder then appends a [MASK] and predicts it). We chose the shifted objective because it trains on every token of
every caption (denser signal for small demo data), has no [MASK] train/test mismatch, and gives teacher and student
the same unmasked input, so attention/hidden-state distillation (pitfall A4, docs/methods.md "Pitfalls") and logit
KD see identical sequences with no random masking to share. The `TiedLMHead` is the same module as the MLM head, so
a pre-trained model's LM head initialises the caption head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def next_token_targets(caption_ids: Tensor, caption_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Which caption positions predict a next token, and which token.

    Args:
        caption_ids: (B, Lc) caption segment ids ([CLS] caption [SEP] pad).
        caption_mask: (B, Lc) bool valid caption tokens (a prefix of each row).

    Returns:
        target_mask (B, Lc) bool: position t is valid and t + 1 is valid; targets (B, Lc) long: token t + 1
        (meaningful where target_mask).
    """
    target_mask = torch.zeros_like(caption_mask)
    target_mask[:, :-1] = caption_mask[:, :-1] & caption_mask[:, 1:]
    targets = torch.roll(caption_ids, shifts=-1, dims=1)  # (B, Lc), targets[:, t] = ids[:, t + 1]
    return target_mask, targets


def caption_loss(logits: Tensor, targets: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
    """Mean next-token cross-entropy.

    Args:
        logits: (M, V) logits at the M target positions.
        targets: (M,) long next tokens.
        label_smoothing: Oscar fine-tunes captioning with 0.1.

    Returns:
        Scalar loss (0 with a gradient path when M = 0).
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
