"""Running `transformers` encoder layers under a 2-D mask, returning pre-dropout attention maps (pitfall A3).

HF's eager attention returns `dropout(softmax(QK^T/sqrt(d) + M))`: in train mode the returned maps hold zeros and
1/(1-p) rescaled values. We register an attention function `vlkd_eager` (same math as
`modeling_bert.eager_attention_forward`) whose returned weights are the softmax *before* dropout, and which appends
them to a list handed down through the layers' `**kwargs` (`vlkd_attention_sink`). Dropout still applies to the
product with the values, so training is unchanged. (Pitfall A3 of docs/methods.md, "Pitfalls".)

The additive mask uses the dtype's minimum (not -10000), so masked keys get exactly zero probability.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlkd_cli.models.outputs import VLOutput

ATTENTION_IMPLEMENTATION = "vlkd_eager"


def vlkd_attention_forward(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    vlkd_attention_sink: list[Tensor] | None = None,
    **kwargs,
) -> tuple[Tensor, Tensor]:
    """Scaled dot-product attention returning the pre-dropout probabilities.

    Args:
        module: The calling attention module (its `training` flag gates dropout).
        query, key, value: (B, H, N, d) projections.
        attention_mask: (B, 1, N, N) additive float mask (0 allowed, dtype min masked), or a bool mask
            (True = may attend), or None.
        scaling: Score scale, default d ** -0.5.
        dropout: Dropout probability on the probabilities used for the output.
        vlkd_attention_sink: If a list, the (B, H, N, N) probabilities are appended to it.

    Returns:
        The attention output (B, N, H, d) and the pre-dropout probabilities (B, H, N, N).
    """
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, H, N, N)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            attention_mask = additive_mask(attention_mask, scores.dtype)
        scores = scores + attention_mask
    probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)  # (B, H, N, N)
    if vlkd_attention_sink is not None:
        vlkd_attention_sink.append(probs)
    dropped = F.dropout(probs, p=dropout, training=module.training)
    output = torch.matmul(dropped, value).transpose(1, 2).contiguous()  # (B, N, H, d)
    return output, probs


def register_attention() -> str:
    """Register `vlkd_eager` with `transformers.AttentionInterface` (idempotent); returns its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_IMPLEMENTATION, vlkd_attention_forward)
    return ATTENTION_IMPLEMENTATION


def additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Bool mask (B, N, N) or (B, 1, N, N), True = may attend -> additive (B, 1, N, N): 0 or the dtype's minimum."""
    if mask.ndim == 3:
        mask = mask[:, None]  # (B, 1, N, N), broadcast over heads
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def run_layers(
    layers: nn.ModuleList,
    hidden: Tensor,
    attention_mask: Tensor,
    *,
    output_attentions: bool = False,
    output_hidden_states: bool = False,
) -> VLOutput:
    """Run BERT-family layers (built with `_attn_implementation = "vlkd_eager"`) under a 2-D mask.

    Args:
        layers: The encoder's layer stack (e.g. `BertModel.encoder.layer`).
        hidden: (B, N, D) input embeddings.
        attention_mask: (B, N, N) bool [query, key], True = may attend.
        output_attentions: Collect each layer's (B, H, N, N) pre-dropout probabilities.
        output_hidden_states: Collect the embeddings and each layer's output.

    Returns:
        VLOutput with L + 1 hidden states and L attention maps when asked for.
    """
    mask = additive_mask(attention_mask, hidden.dtype)  # (B, 1, N, N)
    sink: list[Tensor] | None = [] if output_attentions else None
    states = [hidden] if output_hidden_states else None
    for layer in layers:
        out = layer(hidden, mask, vlkd_attention_sink=sink)
        hidden = out[0] if isinstance(out, tuple) else out
        if states is not None:
            states.append(hidden)
    if sink is not None and len(sink) != len(layers):
        raise RuntimeError(
            f"captured {len(sink)} attention maps from {len(layers)} layers: the encoder does not use the "
            f"{ATTENTION_IMPLEMENTATION!r} attention implementation"
        )
    return VLOutput(
        last_hidden_state=hidden,
        hidden_states=tuple(states) if states is not None else None,
        attentions=tuple(sink) if sink is not None else None,
    )


register_attention()
