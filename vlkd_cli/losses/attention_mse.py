"""Attention-distribution distillation by mean squared error.

Reference: Fang et al., "Compressing Visual-linguistic Model via Knowledge Distillation" (DistillVLM), ICCV 2021,
arXiv 2104.02096: "mean square error loss to mimic the attention distribution inside the transformer block".

    L_att = 1/|S| Σ_{l∈S} 1/(H · Σ_b |V_b|) Σ_b Σ_h Σ_{i∈V_b} Σ_j (A^S_{l,b,h,i,j} − A^T_{m(l),b,h,i,j})²

A are post-softmax, pre-dropout attention probabilities (B, H, N, N) [query i, key j]; V_b the valid query rows of
sample b; S the distilled student layers and m the layer map (`layer_map.py`). Each row is a distribution, so the
squared differences are summed over keys (a per-row squared L2 distance) and averaged over heads and valid rows.
The paper's exact reduction is unknown (docs/methods.md, "DistillVLM losses"); with this one the pilot
(docs/methods.md, "The pilot") measured ~0.1–0.3 at the start (an element-wise mean would be ~N times smaller,
pitfall A5 in docs/methods.md, "Pitfalls") and weight 10 worked.

Padded query rows (pitfall A2) softmax to garbage: they neither count in the mean nor receive gradient, and their
values (even inf/NaN) do not change the loss. Masked key columns are ≈ 0 in both maps and need no mask. The loss is
computed in fp32 even for bf16 inputs. Teacher maps are detached.

When head counts differ, each map is first averaged over its heads (B, H, N, N) -> (B, 1, N, N) and the same
formula applies with H = 1; equal head counts are matched head by head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vlkd_cli.errors import InputError

from .layer_map import map_layers, parse_layer_spec


def attention_mse(student_attn: Tensor, teacher_attn: Tensor, query_mask: Tensor) -> Tensor:
    """Squared differences summed over keys, averaged over heads and valid query rows.

    Args:
        student_attn: (B, H, N, N) student attention probabilities [query, key].
        teacher_attn: (B, H, N, N) teacher attention probabilities, same shape (detached here).
        query_mask: (B, N) bool, True for valid query rows (tokens); False rows are ignored entirely.

    Returns:
        Scalar fp32 loss; 0 (still attached to the student graph) when no row is valid.
    """
    if student_attn.dim() != 4 or student_attn.shape != teacher_attn.shape:
        raise InputError(f"attention maps must both be (B, H, N, N) of one shape, got student "
                         f"{tuple(student_attn.shape)} and teacher {tuple(teacher_attn.shape)}")  # fmt: skip
    batch, heads, tokens, keys = student_attn.shape
    if query_mask.shape != (batch, tokens) or keys != tokens:
        raise InputError(f"query_mask must be (B, N) = ({batch}, {tokens}) for square maps, got "
                         f"{tuple(query_mask.shape)} with maps {tuple(student_attn.shape)}")  # fmt: skip
    invalid = ~query_mask.bool()[:, None, :, None]  # (B, 1, N, 1): padded query rows
    # masked_fill (not a multiply or where on the result): the padded rows get exactly zero gradient and their
    # values, even inf/NaN, never reach the sum.
    student = student_attn.float().masked_fill(invalid, 0.0)  # (B, H, N, N)
    teacher = teacher_attn.detach().float().masked_fill(invalid, 0.0)  # (B, H, N, N)
    per_row = (student - teacher).pow(2).sum(dim=-1)  # (B, H, N): squared L2 distance of each query row
    rows = query_mask.sum().clamp_min(1).to(per_row.dtype)  # number of valid (b, i) rows
    return per_row.sum() / (heads * rows)


class AttentionMSELoss(nn.Module):
    """`attention_mse` over mapped layers: the mean over the (student, teacher) layer pairs.

    Args:
        layers: `all`, `last` or `i,j,...` (student layer indices, 0-based); teacher layers follow the uniform map
            `map_layers(S, T, layers)`.
        pairs: Explicit (student, teacher) layer pairs, e.g. a run's recorded map (wins over `layers`).
        head_average: Force head-averaged matching even when head counts are equal (default: per head when the
            counts are equal, head-averaged otherwise).
    """

    def __init__(self, *, layers: str = "all", pairs: Sequence[tuple[int, int]] | None = None,
                 head_average: bool = False) -> None:  # fmt: skip
        super().__init__()
        parse_layer_spec(layers)  # fail early on bad syntax; the range is checked once the depths are known
        self.layers = layers
        self.pairs = [tuple(p) for p in pairs] if pairs is not None else None
        self.head_average = head_average

    def extra_repr(self) -> str:
        return f"layers={self.layers!r}, pairs={self.pairs}, head_average={self.head_average}"

    def forward(self, student_attentions: Sequence[Tensor], teacher_attentions: Sequence[Tensor],
                query_mask: Tensor) -> Tensor:  # fmt: skip
        """Mean of `attention_mse` over the mapped layers.

        Args:
            student_attentions: S tensors (B, Hs, N, N), one per student layer (`VLOutput.attentions`).
            teacher_attentions: T tensors (B, Ht, N, N), one per teacher layer.
            query_mask: (B, N) bool, True for valid query tokens (the same for both models: aligned inputs).

        Returns:
            Scalar fp32 loss.
        """
        pairs = self.pairs or map_layers(len(student_attentions), len(teacher_attentions), self.layers)
        terms = []
        for s, t in pairs:
            student, teacher = student_attentions[s], teacher_attentions[t]  # (B, Hs, N, N), (B, Ht, N, N)
            if self.head_average or student.shape[1] != teacher.shape[1]:
                student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)  # (B, 1, N, N)
            terms.append(attention_mse(student, teacher, query_mask))
        return torch.stack(terms).mean()
