"""VQA as multi-label classification over an answer vocabulary, trained with BCE on soft scores.

Head: [CLS] -> Linear(D, 2D) -> GELU -> LayerNorm -> Linear(2D, A) (LXMERT's answer head; Oscar's
`cls_hidden_scale` MLP widens the same way). `PooledVQAHead` is Oscar's own head (imported checkpoints): the BERT
pooler (dense + tanh on [CLS]) -> dropout -> `linear` Linear(D, A) or `mlp` Linear(D, sD) -> ReLU -> Linear(sD, A)
(microsoft/Oscar `ImageBertForSequenceClassification`). A model config's `vqa_head` ({"style": "pooled",
"classifier": "linear" | "mlp", "hidden_scale": s}) selects it; absent or {"style": "vlkd"} is the default head. Loss: BCE-with-logits averaged over the batch and summed over answers
(Oscar `instance_bce_with_logits`: the element mean times A), so its scale does not shrink with A.

Answer vocabulary (the standard of bottom-up-attention-vqa `compute_softscore.py`, used by Oscar/VinVL): count each
question's `multiple_choice_answer` once, keep answers seen in at least `min_count` (9) questions. Answers must be
normalized by the caller with the same normalization as the evaluation (the official VQA punctuation/digit/article
rules): this module compares strings as given.

Soft target of an answer = its official VQA accuracy against the (10) human answers: the mean over the leave-one-out
subsets of min(1, matches / 3), i.e. 0.3, 0.6, 0.9, 1.0 for 1, 2, 3, >= 4 matches out of 10
(`vlkd_cli.eval.vqa.question_accuracy`, the same code the evaluation uses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class VQAHead(nn.Module):
    """[CLS] hidden state -> answer logits.

    Args:
        hidden_size: D.
        num_answers: A.
        dropout: Dropout on the [CLS] state.
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: Std of the normal init.
    """

    def __init__(
        self,
        hidden_size: int,
        num_answers: int,
        *,
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-12,
        initializer_range: float = 0.02,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(hidden_size, 2 * hidden_size)
        self.layer_norm = nn.LayerNorm(2 * hidden_size, eps=layer_norm_eps)
        self.output = nn.Linear(2 * hidden_size, num_answers)
        for linear in (self.hidden, self.output):
            nn.init.normal_(linear.weight, std=initializer_range)
            nn.init.zeros_(linear.bias)

    def forward(self, cls_state: Tensor) -> Tensor:
        """(B, D) -> (B, A) logits."""
        return self.output(self.layer_norm(F.gelu(self.hidden(self.dropout(cls_state)))))


class PooledVQAHead(nn.Module):
    """Oscar's classification head: BERT pooler on [CLS] -> dropout -> linear or MLP classifier.

    Args:
        hidden_size: D.
        num_answers: A.
        classifier: "linear" (Linear(D, A)) or "mlp" (Linear(D, sD) -> ReLU -> Linear(sD, A)).
        hidden_scale: s, the MLP width factor (Oscar's `cls_hidden_scale`).
        dropout: Dropout on the pooled state.
        initializer_range: Std of the normal init.
    """

    def __init__(
        self,
        hidden_size: int,
        num_answers: int,
        *,
        classifier: str = "linear",
        hidden_scale: int = 2,
        dropout: float = 0.1,
        initializer_range: float = 0.02,
    ) -> None:
        super().__init__()
        if classifier not in ("linear", "mlp"):
            raise ValueError(f"classifier must be linear or mlp, got {classifier!r}")
        self.pooler = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        width = hidden_size * int(hidden_scale)
        self.hidden = nn.Linear(hidden_size, width) if classifier == "mlp" else None
        self.output = nn.Linear(width if classifier == "mlp" else hidden_size, num_answers)
        for linear in (self.pooler, self.hidden, self.output):
            if linear is not None:
                nn.init.normal_(linear.weight, std=initializer_range)
                nn.init.zeros_(linear.bias)

    def forward(self, cls_state: Tensor) -> Tensor:
        """(B, D) -> (B, A) logits."""
        pooled = self.dropout(torch.tanh(self.pooler(cls_state)))  # (B, D)
        if self.hidden is not None:
            pooled = F.relu(self.hidden(pooled))  # (B, sD)
        return self.output(pooled)


VQA_HEAD_STYLES: tuple[str, ...] = ("vlkd", "pooled")


def check_vqa_head_spec(spec: Mapping[str, object] | None) -> None:
    """Raise ValueError unless `spec` (a config's `vqa_head`) is None or a known style with valid options."""
    if spec is None:
        return
    if not isinstance(spec, Mapping) or spec.get("style", "vlkd") not in VQA_HEAD_STYLES:
        raise ValueError(f"vqa_head must be an object with style in {VQA_HEAD_STYLES}, got {spec!r}")
    if spec.get("style") == "pooled":
        if spec.get("classifier", "linear") not in ("linear", "mlp"):
            raise ValueError(f"vqa_head.classifier must be linear or mlp, got {spec.get('classifier')!r}")
        scale = spec.get("hidden_scale", 2)
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"vqa_head.hidden_scale must be a positive integer, got {scale!r}")


def build_vqa_head(
    hidden_size: int,
    num_answers: int,
    spec: Mapping[str, object] | None = None,
    *,
    dropout: float = 0.1,
    layer_norm_eps: float = 1e-12,
    initializer_range: float = 0.02,
) -> nn.Module:
    """The VQA head a model config asks for (`spec` = its `vqa_head`; None = the default `VQAHead`)."""
    check_vqa_head_spec(spec)
    if spec is None or spec.get("style", "vlkd") == "vlkd":
        return VQAHead(hidden_size, num_answers, dropout=dropout, layer_norm_eps=layer_norm_eps,
                       initializer_range=initializer_range)  # fmt: skip
    return PooledVQAHead(hidden_size, num_answers, classifier=str(spec.get("classifier", "linear")),
                         hidden_scale=int(spec.get("hidden_scale", 2)), dropout=dropout,  # type: ignore[arg-type]
                         initializer_range=initializer_range)  # fmt: skip


def vqa_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """BCE-with-logits on soft scores, summed over answers, averaged over the batch.

    Args:
        logits: (B, A).
        targets: (B, A) soft scores in [0, 1].
    """
    bce = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")  # (B, A)
    return bce.sum(dim=1).mean()


def soft_target_tensor(targets: Sequence[Mapping[int, float]], num_answers: int) -> Tensor:
    """Dense (B, A) float32 scores from B `vlkd_cli.data.vqa_targets.soft_target` dicts."""
    dense = torch.zeros(len(targets), num_answers)
    for row, target in enumerate(targets):
        for index, score in target.items():
            dense[row, index] = score
    return dense
