"""`VLTransformer`: a single-stream (Oscar-style) BERT-family encoder over caption/tag tokens and region tokens.

Embeddings: the caption and tag tokens go through the encoder's own embeddings (word + position 0..T-1 + token type
0/1, LayerNorm, dropout): positions are fixed by the layout, so they never depend on the caption length. Region
tokens come from `RegionEmbedding` (no position embedding). The two are concatenated to (B, N = T + R, D) and run
through the encoder layers under the batch's 2-D mask.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import BertModel

from vlkd_cli.models.attention import run_layers
from vlkd_cli.models.encoders import build_encoder, encoder_layers, load_hf_encoder, preset_encoder_config
from vlkd_cli.models.outputs import VLOutput
from vlkd_cli.models.region_embedding import RegionEmbedding
from vlkd_cli.structures.vl_batch import VLBatch


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
        self, batch: VLBatch, *, output_attentions: bool = False, output_hidden_states: bool = False
    ) -> VLOutput:
        """Encode a batch.

        Returns:
            VLOutput: last_hidden_state (B, N, D); hidden_states L + 1 x (B, N, D) (embeddings first) and attentions
            L x (B, H, N, N) post-softmax, pre-dropout, when asked for.
        """
        hidden = self.embed(batch)  # (B, N, D)
        return run_layers(
            encoder_layers(self.encoder),
            hidden,
            batch.attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
