"""Output records of the encoders and task models."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class VLOutput:
    """What a transformer forward returns.

    Attributes:
        last_hidden_state: (B, N, D) output of the last layer.
        hidden_states: L + 1 tensors (B, N, D): the embeddings, then each layer's output (index l = after layer l),
            or None when not asked for.
        attentions: L tensors (B, H, N, N): post-softmax, pre-dropout attention probabilities of each layer
            [query, key], or None when not asked for.
        logits: Task logits set by a task model's `forward_loss` (shape documented there), else None.
    """

    last_hidden_state: Tensor
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None
    logits: Tensor | None = None


@dataclass
class DualEncoderOutput:
    """What a dual encoder's `forward_loss(..., return_outputs=True)` returns besides the losses.

    Attributes:
        image_embeds: (B, P) L2-normalised image embeddings.
        text_embeds: (B, P) L2-normalised text embeddings.
        logits: (B, B) scaled similarities, image i vs text j.
    """

    image_embeds: Tensor
    text_embeds: Tensor
    logits: Tensor
