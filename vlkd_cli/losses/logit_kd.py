"""Logit (prediction) distillation for fine-tuning heads.

References: Hinton et al., "Distilling the Knowledge in a Neural Network", arXiv 1503.02531 (softened softmax, the
T² factor keeps gradient magnitudes comparable across temperatures). DistillVLM (Fang et al., ICCV 2021, arXiv
2104.02096) also distils the teacher's predictions at fine-tuning (temperature and weights unknown; docs/methods.md,
"DistillVLM losses").

Softmax heads (mutually exclusive classes: caption-token logits (M, V), any single-label classifier):

    L = T² · 1/R Σ_r KL( softmax(t_r/T) ‖ softmax(s_r/T) )                             (`logit_kd`)

Sigmoid heads (independent binary labels: the VQA head, multi-label BCE over soft scores; the ITM head, 1 logit):

    L = T² · mean_{r,a} BCE( sigmoid(s_ra/T), sigmoid(t_ra/T) )                         (`binary_logit_kd`)

Which one for VQA: `binary_logit_kd`. vlkd's VQA head is trained with BCE over independent per-answer sigmoids
(`vlkd_cli.models.vqa_head.vqa_loss`, as Oscar/VinVL), so its logits are not the logits of one softmax
distribution; a softmax KL over them would impose a mutual exclusivity the teacher never learned (a secondary
summary of the paper notes the VQA gain is limited "because answers are largely mutually exclusive"). `vqa_loss`
sums over answers and averages over the batch; pass `reduction="sum"` for that same scale (the default "mean" over
every entry is A times smaller). Note that BCE against soft targets is not 0 at a perfect match: its minimum is the
teacher's binary entropy (a constant; the gradients equal those of the Bernoulli KL).

The pilot (docs/methods.md, "The pilot") found logit KD at T = 2 dominated the loss early and helped nothing: log
its magnitude and weight it accordingly. Default T = 1. Teacher logits are detached; computed in fp32.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from vlkd_cli.errors import InputError


def _check(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> None:
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise InputError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")  # fmt: skip


def logit_kd(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """T² · KL(softmax(t/T) ‖ softmax(s/T)), averaged over rows.

    Args:
        student_logits: (R, C) or (..., C) logits; leading dims are rows.
        teacher_logits: Same shape (detached here).
        temperature: T > 0.

    Returns:
        Scalar fp32 loss (0 for zero rows).
    """
    _check(student_logits, teacher_logits, temperature)
    classes = student_logits.shape[-1]
    student = student_logits.float().reshape(-1, classes) / temperature  # (R, C)
    teacher = teacher_logits.detach().float().reshape(-1, classes) / temperature  # (R, C)
    if student.shape[0] == 0:
        return student.sum() * 0.0
    log_p_teacher = F.log_softmax(teacher, dim=-1)  # (R, C)
    log_p_student = F.log_softmax(student, dim=-1)  # (R, C)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")  # Σ p_t (log p_t − log p_s) / R
    return temperature**2 * kl


def binary_logit_kd(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, *,
                    reduction: Literal["mean", "sum"] = "mean") -> Tensor:  # fmt: skip
    """T² · BCE(sigmoid(s/T), sigmoid(t/T)) for sigmoid heads.

    Args:
        student_logits: (R, A) logits of independent binary labels (VQA answers; ITM: (R,) or (R, 1)).
        teacher_logits: Same shape (detached here).
        temperature: T > 0.
        reduction: "mean" over every entry, or "sum" over the last dim then mean over rows (the scale of `vqa_loss`).

    Returns:
        Scalar fp32 loss.
    """
    _check(student_logits, teacher_logits, temperature)
    student = student_logits.float() / temperature
    target = (teacher_logits.detach().float() / temperature).sigmoid()
    bce = F.binary_cross_entropy_with_logits(student, target, reduction="none")  # like the logits
    if reduction == "mean":
        value = bce.mean() if bce.numel() else bce.sum()
    elif reduction == "sum":
        value = bce.sum(dim=-1).mean() if bce.dim() > 1 else bce.mean()
    else:
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    return temperature**2 * value


class LogitKDLoss(nn.Module):
    """Logit distillation module: `logit_kd` (kind="softmax") or `binary_logit_kd` (kind="sigmoid").

    Args:
        temperature: T (default 1; the paper's value is unknown).
        kind: "softmax" for caption-token / single-label logits, "sigmoid" for the VQA (multi-label BCE) and ITM heads.
        reduction: For kind="sigmoid": "mean" over entries or "sum" over answers then mean over rows.
    """

    def __init__(self, *, temperature: float = 1.0, kind: Literal["softmax", "sigmoid"] = "softmax",
                 reduction: Literal["mean", "sum"] = "mean") -> None:  # fmt: skip
        super().__init__()
        if kind not in ("softmax", "sigmoid"):
            raise ValueError(f"kind must be 'softmax' or 'sigmoid', got {kind!r}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.kind = kind
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, kind={self.kind!r}, reduction={self.reduction!r}"

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, mask: Tensor | None = None) -> Tensor:
        """Loss over the rows selected by `mask`.

        Args:
            student_logits: (..., C) logits, e.g. (B, L, V) caption logits or (B, A) VQA logits.
            teacher_logits: Same shape.
            mask: Optional (...) bool over the leading dims (e.g. (B, L) masked caption positions); None = all rows.

        Returns:
            Scalar fp32 loss.
        """
        if mask is not None:
            if mask.shape != student_logits.shape[:-1]:
                raise InputError(f"logit_kd mask {tuple(mask.shape)} does not match the leading dims of logits "
                                 f"{tuple(student_logits.shape)}")  # fmt: skip
            student_logits, teacher_logits = student_logits[mask.bool()], teacher_logits[mask.bool()]  # (R, C)
        if self.kind == "softmax":
            return logit_kd(student_logits, teacher_logits, self.temperature)
        return binary_logit_kd(student_logits, teacher_logits, self.temperature, reduction=self.reduction)
