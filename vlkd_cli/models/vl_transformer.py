"""`VLTransformer`: a single-stream (Oscar-style) BERT-family encoder over caption/tag tokens and region tokens.

Embeddings: the caption and tag tokens go through the encoder's own embeddings (word + position 0..T-1 + token type
0/1, LayerNorm, dropout): positions are fixed by the layout, so they never depend on the caption length. Region
tokens come from `RegionEmbedding` (no position embedding). The two are concatenated to (B, N = T + R, D) and run
through the encoder layers under the batch's 2-D mask.

For caption decoding the transformer also runs incrementally (`forward(..., cache=...)`): the tags and regions once,
then only the new caption tokens over the cached keys/values (`kv_cache.py`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import BertModel

from vlkd_cli.models.attention import run_layers
from vlkd_cli.models.encoders import build_encoder, encoder_layers, load_hf_encoder, preset_encoder_config
from vlkd_cli.models.kv_cache import KVCache
from vlkd_cli.models.outputs import VLOutput
from vlkd_cli.models.region_embedding import RegionEmbedding
from vlkd_cli.structures.vl_batch import VLBatch, full_attention_mask


class VLTransformer(nn.Module):
    """Caption/tag tokens + region tokens through one BERT-family encoder.

    Args:
        encoder: A `BertModel` built by `vlkd_cli.models.encoders` (vlkd_eager attention, no pooler).
        region_feature_dim: D of the region features.
    """

    def __init__(self, encoder: BertModel, *, region_feature_dim: int) -> None:
        super().__init__()
        config = encoder.config
        self.encoder = encoder
        self.region_embedding = RegionEmbedding(
            region_feature_dim,
            config.hidden_size,
            dropout=config.hidden_dropout_prob,
            layer_norm_eps=config.layer_norm_eps,
            initializer_range=config.initializer_range,
        )

    @classmethod
    def from_preset(
        cls, name: str, *, vocab_size: int, region_feature_dim: int, pad_token_id: int = 0
    ) -> VLTransformer:
        """A randomly initialised transformer of a preset shape (`list_presets()`)."""
        config = preset_encoder_config(name, vocab_size=vocab_size, pad_token_id=pad_token_id)
        return cls(build_encoder(config), region_feature_dim=region_feature_dim)

    @classmethod
    def from_hf_dir(cls, directory: str | Path, *, region_feature_dim: int) -> VLTransformer:
        """A transformer whose encoder is the pretrained BERT-family model of a local HF directory."""
        return cls(load_hf_encoder(directory), region_feature_dim=region_feature_dim)

    @property
    def hidden_size(self) -> int:
        return self.encoder.config.hidden_size

    @property
    def num_layers(self) -> int:
        return self.encoder.config.num_hidden_layers

    @property
    def num_heads(self) -> int:
        return self.encoder.config.num_attention_heads

    @property
    def word_embeddings(self) -> nn.Embedding:
        """The token embedding table (V, D) that LM heads tie to."""
        return self.encoder.embeddings.word_embeddings

    def embed(self, batch: VLBatch) -> Tensor:
        """(B, N, D) input embeddings: text tokens then region tokens."""
        num_text = batch.num_text_tokens
        if num_text > self.encoder.config.max_position_embeddings:
            raise ValueError(
                f"{num_text} text positions exceed the encoder's {self.encoder.config.max_position_embeddings}"
            )
        position_ids = torch.arange(num_text, device=batch.input_ids.device)[None]  # (1, T)
        text = self.encoder.embeddings(
            input_ids=batch.input_ids, token_type_ids=batch.token_type_ids, position_ids=position_ids
        )  # (B, T, D)
        regions = self.region_embedding(batch.region_features, batch.region_boxes)  # (B, R, D)
        return torch.cat([text, regions.to(text.dtype)], dim=1)  # (B, N, D)

    def forward(
        self,
        batch: VLBatch | None = None,
        *,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        cache: KVCache | None = None,
        caption_ids: Tensor | None = None,
    ) -> VLOutput:
        """Encode a batch, or one step of incremental caption decoding (cached keys/values, see `kv_cache.py`).

        - `forward(batch)`: the whole sequence.
        - `forward(batch, cache=KVCache.empty(L))` (a seq2seq batch): the tag and region tokens only, whose
          keys/values of every layer fill `cache`; last_hidden_state (B, S, D) of those S tokens.
        - `forward(caption_ids=ids, cache=cache)`: ids (M, n) are the next n caption tokens of the M hypotheses of a
          filled cache; they attend to the cache and causally to each other and are appended to it;
          last_hidden_state (M, n, D).

        Returns:
            VLOutput: last_hidden_state (B, N, D); hidden_states L + 1 x (B, N, D) (embeddings first) and attentions
            L x (B, H, N, K) post-softmax, pre-dropout, when asked for.
        """
        if caption_ids is not None:
            if cache is None or batch is not None:
                raise ValueError("caption_ids go with a filled cache and no batch")
            return self._extend(cache, caption_ids, output_attentions, output_hidden_states)
        if batch is None:
            raise ValueError("need a batch (or caption_ids with a cache)")
        if cache is not None:
            return self._encode_context(batch, cache, output_attentions, output_hidden_states)
        hidden = self.embed(batch)  # (B, N, D)
        return run_layers(
            encoder_layers(self.encoder),
            hidden,
            batch.attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )

    def _encode_context(self, batch: VLBatch, cache: KVCache, output_attentions: bool,
                        output_hidden_states: bool) -> VLOutput:  # fmt: skip
        """Fill an empty cache with the tag/region tokens of a seq2seq batch (they never attend to the caption)."""
        if batch.mask_type != "seq2seq":
            raise ValueError(f"cached decoding needs a seq2seq batch, got a {batch.mask_type!r} mask")
        if cache.rows is not None:
            raise ValueError("the cache already holds a context")
        caption = batch.max_text_len
        hidden = self.embed(batch)[:, caption:]  # (B, S, D): tags (positions max_text_len..T-1, type 1), regions
        valid = batch.query_mask[:, caption:]  # (B, S)
        # The seq2seq mask restricted to tags/regions: full among the valid ones, padded rows attend to themselves.
        mask = full_attention_mask(valid)  # (B, S, S)
        out = run_layers(encoder_layers(self.encoder), hidden, mask, output_attentions=output_attentions,
                         output_hidden_states=output_hidden_states, cache=cache)  # fmt: skip
        cache.rows = torch.arange(batch.batch_size, device=valid.device)
        cache.context_mask = valid
        cache.caption_types = batch.token_type_ids[:, :caption]  # (B, max_text_len)
        cache.caption_length = 0
        return out

    def _extend(self, cache: KVCache, caption_ids: Tensor, output_attentions: bool,
                output_hidden_states: bool) -> VLOutput:  # fmt: skip
        """Feed n caption tokens per hypothesis at positions t..t+n-1, exactly as the full sequence embeds and masks
        them (word + position + the caption segment's token type; keys: valid context, earlier caption, causal)."""
        if cache.rows is None:
            raise ValueError("the cache holds no context: encode the batch with the cache first")
        rows, n = caption_ids.shape
        start = cache.caption_length
        if rows != cache.batch_size or start + n > cache.max_text_len:
            raise ValueError(f"{rows} x {n} caption tokens after {start} for a cache of {cache.batch_size} "
                             f"hypotheses and max_text_len={cache.max_text_len}")  # fmt: skip
        position_ids = torch.arange(start, start + n, device=caption_ids.device)[None]  # (1, n)
        token_type_ids = cache.caption_types[:, start : start + n]  # (M, n)
        hidden = self.encoder.embeddings(
            input_ids=caption_ids, token_type_ids=token_type_ids, position_ids=position_ids
        )  # (M, n, D)
        new = torch.ones(n, n, dtype=torch.bool, device=caption_ids.device).tril()  # (n, n) key <= query
        mask = torch.cat([
            cache.context_mask[:, None, :].expand(rows, n, -1),  # (M, n, S): the valid tags and regions
            torch.ones(rows, n, start, dtype=torch.bool, device=caption_ids.device),  # (M, n, t): earlier caption
            new[None].expand(rows, n, n),  # (M, n, n)
        ], dim=2)  # (M, n, S + t + n)  # fmt: skip
        out = run_layers(encoder_layers(self.encoder), hidden, mask, output_attentions=output_attentions,
                         output_hidden_states=output_hidden_states, cache=cache)  # fmt: skip
        cache.caption_length = start + n
        return out
