"""`DualEncoder`: separate image and text towers in a shared embedding space (CLIP-style), for fast retrieval.

- Image tower: a learned [IMG] token followed by the region tokens (`RegionEmbedding`, feature ⊕ geometry, no
  positions) through a BERT-family layer stack (`BertEncoder`, own weights; the full mask over valid regions).
- Text tower: a BERT-family encoder (preset or pretrained HF dir) over the caption segment `[CLS] text [SEP]` with
  its own word/position embeddings (token type 0, full mask over valid tokens).
- Each tower's first token is projected (no bias) to `projection_dim` and L2-normalised; scores are cosine
  similarities. Training: symmetric InfoNCE with a learnable temperature (`logit_scale`, CLIP init log(1/0.07), its
  exponential clamped at 100).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertEncoder

from vlkd_cli.models.attention import register_attention, run_layers
from vlkd_cli.models.encoders import encoder_layers
from vlkd_cli.models.outputs import DualEncoderOutput
from vlkd_cli.models.region_embedding import RegionEmbedding
from vlkd_cli.models.task_model import Targets, TaskModel
from vlkd_cli.structures.vl_batch import VLBatch, full_attention_mask

LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = 100.0


def contrastive_loss(
    image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor | float, *, image_ids: Tensor | None = None
) -> Tensor:
    """Symmetric InfoNCE: the mean of the image->text and text->image cross-entropies, pair i being the positive.

    Args:
        image_emb: (B, P) L2-normalised image embeddings.
        text_emb: (B, P) L2-normalised text embeddings (row i matches image row i).
        logit_scale: The multiplier of the cosine similarities (exp of the learned log-scale, clamped).
        image_ids: Optional (B,) image ids: off-diagonal pairs of the same image (several captions of one image in
            a batch) are left out of the softmax instead of being counted as negatives.

    Returns:
        Scalar loss.
    """
    logits = logit_scale * image_emb.float() @ text_emb.float().T  # (B, B) image i vs text j
    if image_ids is not None:
        same = image_ids[:, None] == image_ids[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same.to(logits.device), float("-inf"))
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def _init_bert_module(module: nn.Module, std: float) -> None:
    """BERT's initialisation for modules built outside a `PreTrainedModel`."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.normal_(sub.weight, std=std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)


class DualEncoder(TaskModel):
    """Image and text towers with a contrastive objective.

    Args:
        text_encoder: `BertModel` of the text tower (vlkd_eager attention, no pooler).
        image_config: `BertConfig` of the image tower's layer stack.
        config: The model's JSON-able config (`region_feature_dim`, `projection_dim`, `layout`, ...).
    """

    def __init__(self, text_encoder: BertModel, image_config: BertConfig, config: dict[str, Any]) -> None:
        super().__init__(config)
        image_config._attn_implementation = register_attention()
        self.text_encoder = text_encoder
        self.image_encoder = BertEncoder(image_config)
        self.region_embedding = RegionEmbedding(
            int(config["region_feature_dim"]),
            image_config.hidden_size,
            dropout=image_config.hidden_dropout_prob,
            layer_norm_eps=image_config.layer_norm_eps,
            initializer_range=image_config.initializer_range,
        )
        self.image_token = nn.Parameter(torch.randn(1, 1, image_config.hidden_size) * image_config.initializer_range)
        projection_dim = int(config["projection_dim"])
        self.image_projection = nn.Linear(image_config.hidden_size, projection_dim, bias=False)
        self.text_projection = nn.Linear(text_encoder.config.hidden_size, projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        _init_bert_module(self.image_encoder, image_config.initializer_range)
        nn.init.normal_(self.image_projection.weight, std=image_config.hidden_size**-0.5)
        nn.init.normal_(self.text_projection.weight, std=text_encoder.config.hidden_size**-0.5)

    def scale(self) -> Tensor:
        """exp(logit_scale) clamped at 100 (CLIP)."""
        return self.logit_scale.exp().clamp(max=LOGIT_SCALE_MAX)

    def encode_image(self, region_features: Tensor, region_boxes: Tensor, region_mask: Tensor) -> Tensor:
        """(B, R, D) features, (B, R, 6) geometry, (B, R) bool mask -> (B, P) L2-normalised embeddings."""
        regions = self.region_embedding(region_features, region_boxes)  # (B, R, Di)
        image_token = self.image_token.expand(regions.shape[0], -1, -1).to(regions.dtype)  # (B, 1, Di)
        hidden = torch.cat([image_token, regions], dim=1)  # (B, 1 + R, Di)
        valid = torch.cat([region_mask.new_ones(region_mask.shape[0], 1), region_mask], dim=1)  # (B, 1 + R)
        out = run_layers(self.image_encoder.layer, hidden, full_attention_mask(valid))
        return F.normalize(self.image_projection(out.last_hidden_state[:, 0]), dim=-1)

    def encode_text(self, input_ids: Tensor, text_mask: Tensor) -> Tensor:
        """(B, L) ids `[CLS] text [SEP] pad` and (B, L) bool valid mask -> (B, P) L2-normalised embeddings."""
        position_ids = torch.arange(input_ids.shape[1], device=input_ids.device)[None]  # (1, L)
        hidden = self.text_encoder.embeddings(
            input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids), position_ids=position_ids
        )  # (B, L, Dt)
        out = run_layers(encoder_layers(self.text_encoder), hidden, full_attention_mask(text_mask))
        return F.normalize(self.text_projection(out.last_hidden_state[:, 0]), dim=-1)

    def encode_batch(self, batch: VLBatch) -> tuple[Tensor, Tensor]:
        """(B, P) image and (B, P) text embeddings of a batch (its caption segment; tags are not used)."""
        self.check_batch(batch)
        image_emb = self.encode_image(batch.region_features, batch.region_boxes, batch.region_mask)
        text_emb = self.encode_text(batch.caption_ids, batch.caption_mask)
        return image_emb, text_emb

    @staticmethod
    def similarity(image_emb: Tensor, text_emb: Tensor) -> Tensor:
        """(I, P) x (J, P) normalised embeddings -> (I, J) cosine similarities (the retrieval scores)."""
        return image_emb @ text_emb.T

    def forward_loss(self, batch: VLBatch, targets: Targets | None = None, *, return_outputs: bool = False, **_):
        """{"loss", "contrastive_loss"} over the in-batch pairs; `targets["image_ids"]` (optional) excludes
        same-image pairs from the negatives."""
        image_emb, text_emb = self.encode_batch(batch)
        image_ids = (targets or {}).get("image_ids")
        scale = self.scale()
        loss = contrastive_loss(image_emb, text_emb, scale, image_ids=image_ids)
        losses = {"loss": loss, "contrastive_loss": loss}
        if not return_outputs:
            return losses
        return losses, DualEncoderOutput(image_emb, text_emb, scale * self.similarity(image_emb, text_emb))
