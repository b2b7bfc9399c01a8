"""Running `transformers` encoder layers under a 2-D mask, returning pre-dropout attention maps (pitfall A3).

HF's eager attention returns `dropout(softmax(QK^T/sqrt(d) + M))`: in train mode the returned maps hold zeros and
1/(1-p) rescaled values. We register an attention function `vlkd_eager` (same math as
`modeling_bert.eager_attention_forward`) whose returned weights are the softmax *before* dropout, and which appends
them to a list handed down through the layers' `**kwargs` (`vlkd_attention_sink`). Dropout still applies to the
product with the values, so training is unchanged. (Pitfall A3 of docs/methods.md, "Pitfalls".)

The additive mask uses the dtype's minimum (not -10000), so masked keys get exactly zero probability.

Incremental caption decoding hands each layer its `LayerKV` the same way (`vlkd_kv_cache`, see `kv_cache.py`): the
first pass over the tags and regions stores their keys/values; a decoding step's queries (the new caption tokens)
then attend to [cached context keys, cached caption keys, their own keys], the keys of the mask's last dimension in
that order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlkd_cli.models.kv_cache import KVCache, LayerKV
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
    vlkd_kv_cache: LayerKV | None = None,
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
        vlkd_kv_cache: This layer's cache. Empty: `key`/`value` are the context's, stored, and attention runs as
            usual. Filled: `query`/`key`/`value` are (B, H, n, d) of n new caption tokens, whose keys/values are
            appended to the cache; the mask is then (B, 1, n, S + t + n) over [context, earlier caption, new].

    Returns:
        The attention output (B, N, H, d) and the pre-dropout probabilities (B, H, N, K) (K = N without a cache).
    """
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    if vlkd_kv_cache is not None and vlkd_kv_cache.has_context:
        return _cached_step_attention(module, query, key, value, attention_mask, scaling, dropout,
                                      vlkd_attention_sink, vlkd_kv_cache)  # fmt: skip
    if vlkd_kv_cache is not None:
        vlkd_kv_cache.set_context(key, value)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, H, N, N)
    probs, dropped = _probabilities(module, scores, attention_mask, query.dtype, dropout, vlkd_attention_sink)
    output = torch.matmul(dropped, value).transpose(1, 2).contiguous()  # (B, N, H, d)
    return output, probs


def _probabilities(module: nn.Module, scores: Tensor, attention_mask: Tensor | None, dtype: torch.dtype,
                   dropout: float, sink: list[Tensor] | None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """softmax(scores + mask) (B, H, N, K), kept in `sink` when one is given, and its dropped-out copy."""
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            attention_mask = additive_mask(attention_mask, scores.dtype)
        scores = scores + attention_mask
    probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(dtype)  # (B, H, N, K)
    if sink is not None:
        sink.append(probs)
    return probs, F.dropout(probs, p=dropout, training=module.training)


def _cached_step_attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float,
    dropout: float,
    sink: list[Tensor] | None,
    cache: LayerKV,
) -> tuple[Tensor, Tensor]:
    """Attention of n new caption tokens over the cached context, the cached caption tokens and themselves.

    The context keys are multiplied in place (never concatenated with the caption ones), so a step copies only the
    short caption part of the cache.
    """
    caption_key, caption_value = cache.append_caption(key, value)  # (B, H, t + n, d) each
    context = torch.matmul(query, cache.context_key.transpose(2, 3))  # (B, H, n, S)
    caption = torch.matmul(query, caption_key.transpose(2, 3))  # (B, H, n, t + n)
    scores = torch.cat([context, caption], dim=-1) * scaling  # (B, H, n, K = S + t + n)
    probs, dropped = _probabilities(module, scores, attention_mask, query.dtype, dropout, sink)  # (B, H, n, K)
    num_context = cache.context_key.shape[2]
    output = torch.matmul(dropped[..., :num_context], cache.context_value)  # (B, H, n, d)
    output = output + torch.matmul(dropped[..., num_context:], caption_value)
    return output.transpose(1, 2).contiguous(), probs  # (B, n, H, d)


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
    cache: KVCache | None = None,
) -> VLOutput:
    """Run BERT-family layers (built with `_attn_implementation = "vlkd_eager"`) under a 2-D mask.

    Args:
        layers: The encoder's layer stack (e.g. `BertModel.encoder.layer`).
        hidden: (B, N, D) input embeddings.
        attention_mask: (B, N, K) bool [query, key], True = may attend (K = N, or with a filled `cache` the cached
            and new keys, see `vlkd_attention_forward`).
        output_attentions: Collect each layer's (B, H, N, K) pre-dropout probabilities.
        output_hidden_states: Collect the embeddings and each layer's output.
        cache: Keys/values to fill (empty) or to extend (filled), one `LayerKV` per layer.

    Returns:
        VLOutput with L + 1 hidden states and L attention maps when asked for.
    """
    mask = additive_mask(attention_mask, hidden.dtype)  # (B, 1, N, K)
    sink: list[Tensor] | None = [] if output_attentions else None
    states = [hidden] if output_hidden_states else None
    if cache is not None and len(cache.layers) != len(layers):
        raise ValueError(f"a cache of {len(cache.layers)} layers for {len(layers)} layers")
    for i, layer in enumerate(layers):
        extra = {} if cache is None else {"vlkd_kv_cache": cache.layers[i]}
        out = layer(hidden, mask, vlkd_attention_sink=sink, **extra)
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
