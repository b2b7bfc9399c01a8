"""Cached keys/values for incremental caption decoding under Oscar's seq2seq mask.

With the seq2seq mask (`structures/vl_batch.py`) the tag and region tokens never attend to caption tokens, and a
caption token attends only to the caption tokens up to itself plus the valid tags and regions. So every layer's
keys and values of the tags and regions (the *context*) are the same at every decoding step, and those of an
already fed caption token never change either: each step can feed only the newest token and attend to the cached
keys/values of everything before it. The result is the full recomputation's, up to float summation order.

Per layer the cache keeps two parts:

- context: (M, H, S, d) keys and values of the S = max_tag_len + max_regions tag/region tokens, computed once per
  input row. Within a row every hypothesis has the same context, so reordering beams (which keeps each hypothesis
  in its row) does not copy it; only a change of rows (finished rows dropped, beams first expanded) does.
- caption: (M, H, t, d) keys and values of the t caption tokens fed so far ([CLS] first), grown by one per step and
  reordered along with the hypotheses.

M counts hypotheses (rows x beams). The attention function (`attention.py`, `vlkd_kv_cache`) fills and reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class LayerKV:
    """One layer's cached keys and values (see the module docstring); None = not filled yet.

    Attributes:
        context_key, context_value: (M, H, S, d) of the tag and region tokens.
        caption_key, caption_value: (M, H, t, d) of the caption tokens fed so far.
    """

    context_key: Tensor | None = None
    context_value: Tensor | None = None
    caption_key: Tensor | None = None
    caption_value: Tensor | None = None

    @property
    def has_context(self) -> bool:
        return self.context_key is not None

    def set_context(self, key: Tensor, value: Tensor) -> None:
        """Store the (M, H, S, d) keys and values of the context (the first pass over the tags and regions)."""
        self.context_key, self.context_value = key, value

    def append_caption(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Append the (M, H, n, d) keys and values of n new caption tokens; returns all caption ones (M, H, t+n, d)."""
        if self.caption_key is not None:
            key = torch.cat([self.caption_key, key], dim=2)  # (M, H, t + n, d)
            value = torch.cat([self.caption_value, value], dim=2)
        self.caption_key, self.caption_value = key, value
        return key, value

    def select(self, index: Tensor, *, context: bool) -> LayerKV:
        """Hypotheses `index` (M',); the context is gathered only when `context` (the rows changed)."""

        def pick(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.index_select(0, index)

        ctx_key, ctx_value = (pick(self.context_key), pick(self.context_value)) if context else (
            self.context_key, self.context_value)  # fmt: skip
        return LayerKV(ctx_key, ctx_value, pick(self.caption_key), pick(self.caption_value))


@dataclass
class KVCache:
    """The per-layer caches of M hypotheses, and what a decoding step needs besides them.

    Attributes:
        layers: One `LayerKV` per transformer layer.
        rows: (M,) long: the input row (image) of each hypothesis, as numbered when the cache was started.
        context_mask: (M, S) bool: the context keys a caption token may attend (the valid tags and regions).
        caption_types: (M, max_text_len) long: token types of the caption segment (0 in the shared layout).
        caption_length: t, the caption tokens fed so far (the next token's position).
    """

    layers: list[LayerKV]
    rows: Tensor | None = None
    context_mask: Tensor | None = None
    caption_types: Tensor | None = None
    caption_length: int = 0

    @classmethod
    def empty(cls, num_layers: int) -> KVCache:
        """A cache to fill by encoding the context (`VLTransformer.forward(batch, cache=...)`)."""
        return cls(layers=[LayerKV() for _ in range(num_layers)])

    @property
    def batch_size(self) -> int:
        """M hypotheses."""
        return 0 if self.rows is None else self.rows.shape[0]

    @property
    def max_text_len(self) -> int:
        return 0 if self.caption_types is None else self.caption_types.shape[1]

    def select(self, index: Tensor) -> KVCache:
        """The cache of hypotheses `index` (M',) long, in that order (repeats allowed): beams chosen, rows dropped.

        The context is copied only when some hypothesis changes row; the caption part always follows `index`.
        """
        if self.rows is None:
            raise ValueError("select on a cache whose context was never encoded")
        index = index.to(self.rows.device)
        if index.shape[0] == self.rows.shape[0] and torch.equal(index, torch.arange(len(index), device=index.device)):
            return self  # every hypothesis keeps its place
        rows = self.rows.index_select(0, index)
        moved = rows.shape != self.rows.shape or not torch.equal(rows, self.rows)
        return KVCache(
            layers=[layer.select(index, context=moved) for layer in self.layers],
            rows=rows,
            context_mask=self.context_mask.index_select(0, index) if moved else self.context_mask,
            caption_types=self.caption_types.index_select(0, index) if moved else self.caption_types,
            caption_length=self.caption_length,
        )
