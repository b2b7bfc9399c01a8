"""Dynamic contrastive distillation (DCD) for image-text retrieval with teacher-mined hard negatives.

Reference: Rao et al., "Dynamic Contrastive Distillation for Image-Text Retrieval", IEEE TMM 2023, arXiv 2207.01426;
formulas from the released code raojay7/DCD:meter/modules/KD_loss.py `distillation_loss` (docs/methods.md,
"DCD (image-text retrieval)").

Inputs: student scores s and teacher scores t, both (B, K): row b is one image, column 0 its positive caption and
columns 1..K−1 the teacher-chosen hard negatives, the teacher's columns aligned with the student's. T = temperature.

    p_b   = softmax(t_b / T)                          teacher distribution over the K candidates
    H_b   = −Σ_j p_bj log p_bj                         (via log_softmax: no NaN when p underflows; pitfall D3)
    e_b   = H_b / Σ_b' H_b'                            (uniform 1/B when Σ H = 0: a confident teacher everywhere)
    w_b   = softmax_b( (1 − e_b)² )                    over the batch
    L_kd  = T² · Σ_b w_b · mean_j ((t_bj − s_bj) / T)²
    L_hard = Σ_b e_b · mean_j BCEWithLogits(s_bj, y_j),   y = [1, 0, …, 0]   (per-candidate BCE, pitfall D4)
    L     = α · L_kd + (1 − α) · L_hard                 α = 0.2, T = 1 as released

The pitfall codes D1–D4 here are those of docs/methods.md, "Pitfalls".

e_b and w_b are normalised over the batch given (the per-process micro-batch under DDP / gradient accumulation), so
the loss depends on the micro-batch size (pitfall D3): record it. Teacher scores are detached.

`reproduce_released=True` reproduces the released code for comparison:
- D2: the KD term is `T² · Σ_b w_b · F.mse_loss(t/T, s/T)` with the scalar mean, i.e. Σ_b w_b · MSE = plain MSE over
  all B·K entries — the "dynamic" KD weight is a no-op;
- the entropy uses softmax(t) without the temperature (the code ignores T there; T = 1 as released, so same);
- D1 (columns misaligned) is a caller concern: the released code passes the teacher's top-K scores of the candidate
  pool in descending order, whatever the student's columns are. To reproduce it, pass
  `teacher_scores = torch.topk(teacher_pool_scores, K, dim=1).values` instead of the column-aligned scores.
The entropy stays NaN-safe in both modes (the released `p * log(p)` is NaN when p underflows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlkd_cli.errors import InputError


def dcd_weights(teacher_scores: Tensor, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """Per-sample hard-term shares e (entropy share) and KD weights w, both (B,) summing to 1.

    Args:
        teacher_scores: (B, K) teacher scores (detached here).
        temperature: T applied inside the softmax.
    """
    log_p = F.log_softmax(teacher_scores.detach().float() / temperature, dim=1)  # (B, K)
    entropy = -(log_p.exp() * log_p).sum(dim=1)  # (B,): p·log p is 0·finite = 0 when p underflows, never NaN
    total = entropy.sum()
    uniform = torch.full_like(entropy, 1.0 / entropy.numel())  # (B,)
    share = torch.where(total > 0, entropy / total.clamp_min(torch.finfo(entropy.dtype).tiny), uniform)  # (B,)
    weight = torch.softmax((1.0 - share) ** 2, dim=0)  # (B,)
    return share, weight


def dcd_loss(student_scores: Tensor, teacher_scores: Tensor, *, alpha: float = 0.2, temperature: float = 1.0,
             reproduce_released: bool = False, return_parts: bool = False) -> Tensor | dict[str, Tensor]:  # fmt: skip
    """DCD loss of student scores against column-aligned teacher scores.

    Args:
        student_scores: (B, K) student scores (logits), column 0 the positive.
        teacher_scores: (B, K) teacher scores for the same candidates in the same columns (detached here).
        alpha: α, the KD share (released 0.2).
        temperature: T (released 1).
        reproduce_released: Use the released code's scalar-MSE KD term and T-free entropy (see the module doc).
        return_parts: Return {"loss", "dcd_kd_loss", "dcd_hard_loss"} instead of the scalar.

    Returns:
        Scalar fp32 loss, or the dict of parts.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_scores.dim() != 2 or student_scores.shape != teacher_scores.shape or 0 in student_scores.shape:
        raise InputError(f"dcd_loss expects student and teacher scores of one shape (B, K), got "
                         f"{tuple(student_scores.shape)} and {tuple(teacher_scores.shape)}")  # fmt: skip
    student = student_scores.float()  # (B, K)
    teacher = teacher_scores.detach().float()  # (B, K)
    share, weight = dcd_weights(teacher, 1.0 if reproduce_released else temperature)  # (B,), (B,)
    squared = ((teacher - student) / temperature) ** 2  # (B, K)
    if reproduce_released:
        kd = temperature**2 * (weight * squared.mean()).sum()  # Σ_b w_b · MSE_mean = MSE_mean (D2)
    else:
        kd = temperature**2 * (weight * squared.mean(dim=1)).sum()
    target = torch.zeros_like(student)  # (B, K)
    target[:, 0] = 1.0
    bce = F.binary_cross_entropy_with_logits(student, target, reduction="none").mean(dim=1)  # (B,)
    hard = (share * bce).sum()
    loss = alpha * kd + (1.0 - alpha) * hard
    if return_parts:
        return {"loss": loss, "dcd_kd_loss": kd, "dcd_hard_loss": hard}
    return loss


class DCDLoss(nn.Module):
    """`dcd_loss` as a module (the DCD task module's term).

    Args:
        alpha: α, the KD share (default 0.2, as released).
        temperature: T (default 1, as released).
        reproduce_released: The released code's behaviour (scalar-MSE KD term, D2); see the module docstring.
    """

    def __init__(self, *, alpha: float = 0.2, temperature: float = 1.0, reproduce_released: bool = False) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.alpha = alpha
        self.temperature = temperature
        self.reproduce_released = reproduce_released

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, temperature={self.temperature}, reproduce_released={self.reproduce_released}"

    def forward(self, student_scores: Tensor, teacher_scores: Tensor, *,
                return_parts: bool = False) -> Tensor | dict[str, Tensor]:  # fmt: skip
        """See `dcd_loss`: (B, K) student and column-aligned teacher scores, column 0 the positive."""
        return dcd_loss(student_scores, teacher_scores, alpha=self.alpha, temperature=self.temperature,
                        reproduce_released=self.reproduce_released, return_parts=return_parts)  # fmt: skip
