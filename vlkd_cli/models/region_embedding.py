"""Region tokens: LayerNorm(Linear(feature ⊕ 6-d box geometry)), then dropout.

Position and segment handling (a choice, as in Oscar's `BertImgModel`): region tokens get **no position embedding**.
Regions are a set; where a region is comes from its geometry (x1/W, y1/H, x2/W, y2/H, w/W, h/H), and their stored order
only decides truncation. They get **no token-type embedding** either: BERT checkpoints have two token types, used by
the caption (0) and the tags (1); the projection's bias and this LayerNorm's own affine parameters play the role of a
"region" segment embedding.

`layer_norm=False` drops the LayerNorm (Linear -> dropout): Oscar's `BertImgModel` applies its image LayerNorm only
when its config sets `use_img_layernorm` (microsoft/Oscar `oscar/modeling/modeling_bert.py`), and a LayerNorm with
weight 1 and bias 0 is not the identity (it still normalizes), so imported checkpoints without one need it off.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vlkd_cli.structures.vl_batch import GEOMETRY_DIM


class RegionEmbedding(nn.Module):
    """Project region features and their box geometry to the encoder width.

    Args:
        feature_dim: D, the RoI feature size (the 6 geometry values are added here).
        hidden_size: The encoder width.
        dropout: Dropout after the LayerNorm (the encoder's hidden dropout).
        layer_norm_eps: LayerNorm epsilon (the encoder's).
        initializer_range: Std of the normal init of the projection (BERT's 0.02).
        layer_norm: Apply the LayerNorm after the projection (vlkd's default); False = Linear -> dropout.
    """

    def __init__(
        self,
        feature_dim: int,
        hidden_size: int,
        *,
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-12,
        initializer_range: float = 0.02,
        layer_norm: bool = True,
    ) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.projection = nn.Linear(feature_dim + GEOMETRY_DIM, hidden_size)
        self.layer_norm: nn.Module = nn.LayerNorm(hidden_size, eps=layer_norm_eps) if layer_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        nn.init.normal_(self.projection.weight, std=initializer_range)
        nn.init.zeros_(self.projection.bias)

    def forward(self, features: Tensor, geometry: Tensor) -> Tensor:
        """(B, R, D) features and (B, R, 6) geometry -> (B, R, hidden) region tokens."""
        if features.shape[-1] != self.feature_dim:
            raise ValueError(f"region features have dim {features.shape[-1]}, the model expects {self.feature_dim}")
        weight = self.projection.weight  # a method, not a tensor, once dynamically quantised (which takes float32)
        dtype = weight.dtype if isinstance(weight, Tensor) else torch.float32
        tokens = self.projection(torch.cat([features, geometry], dim=-1).to(dtype))
        return self.dropout(self.layer_norm(tokens))  # (B, R, hidden)
