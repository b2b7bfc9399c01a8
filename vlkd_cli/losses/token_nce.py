"""Token-wise noise-contrastive (InfoNCE) distillation of hidden states against a queue of teacher keys.

Reference: Fang et al., "Compressing Visual-linguistic Model via Knowledge Distillation" (DistillVLM), ICCV 2021,
arXiv 2104.02096: "token-wise noise contrastive loss to align the hidden state by contrasting with negative
representations stored in a sample queue"; token-level beats mean-pooled, NCE beats MSE, K = 4,096 was best.

    L_nce = −1/M Σ_i log( exp(s_i·t_i/τ) / (exp(s_i·t_i/τ) + Σ_{k=1..K} exp(s_i·q_k/τ)) )

s_i = normalize(P h^S_i) is the projected student token (P: a learned Linear(Ds, Dt)), t_i = normalize(h^T_i) the
teacher token at the same position of the same sample (the positive), q_k = normalize(queue_k) the K stored teacher
keys (negatives). Shapes: student_tokens (B, N, Ds), teacher_tokens (B, N, Dt), token_mask (B, N) bool, queue (K, Dt).

Not known from the paper (docs/methods.md, "Choices where the paper is silent"): τ (default 0.07 from MoCo, He et
al. 2020 — a value to sweep), projection heads, and how the queue is filled. Choices here (pitfalls A7–A9,
docs/methods.md "Pitfalls"):
- all three sides are L2-normalised at loss time (A7), in fp32;
- the queue stores RAW teacher states (the teacher is frozen, so keys never go stale; A8) and no student vectors;
- only tokens of `token_mask` are used — the caller excludes padding and special tokens;
- in-batch tokens are not negatives (A9: same image, same words);
- optional random sub-sampling of at most `max_tokens` tokens per step: in the pilot (docs/methods.md, "The pilot")
  NCE over all tokens with K = 4,096 made a step ~3x a plain one, 256 tokens brought it to 1.2–1.4x. The same
  tokens are then enqueued. The pilot's NCE plateaued high (near-duplicate false negatives such as [CLS]); keep its
  weight ≤ 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlkd_cli.errors import InputError

from .queue import FeatureQueue


def token_nce(student: Tensor, teacher: Tensor, negatives: Tensor, temperature: float) -> Tensor:
    """InfoNCE with one positive per row and shared negatives, computed with logsumexp in fp32.

    Args:
        student: (M, D) student vectors (already projected to D).
        teacher: (M, D) teacher vectors, row i the positive of student row i (detached here).
        negatives: (K, D) negative keys, K may be 0 (then every term is −log 1 = 0).
        temperature: τ > 0.

    Returns:
        Scalar: mean over the M rows of −log(exp(s_i·t_i/τ) / (exp(s_i·t_i/τ) + Σ_k exp(s_i·q_k/τ))); 0 (attached to
        the student graph) when M = 0.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    same_dim = negatives.dim() == 2 and negatives.shape[1] == student.shape[-1]
    if student.dim() != 2 or student.shape != teacher.shape or not same_dim:
        raise InputError(f"token_nce expects student (M, D), teacher (M, D), negatives (K, D); got "
                         f"{tuple(student.shape)}, {tuple(teacher.shape)}, {tuple(negatives.shape)}")  # fmt: skip
    if student.shape[0] == 0:
        return student.float().sum() * 0.0
    with torch.autocast(device_type=student.device.type, enabled=False):  # autocast would run the matmul in bf16
        s = F.normalize(student.float(), dim=-1)  # (M, D)
        t = F.normalize(teacher.detach().float(), dim=-1)  # (M, D)
        q = F.normalize(negatives.detach().float(), dim=-1)  # (K, D): a copy, so a later push cannot corrupt backward
        positive = (s * t).sum(dim=-1, keepdim=True) / temperature  # (M, 1)
        negative = s @ q.t() / temperature  # (M, K)
        logits = torch.cat([positive, negative], dim=1)  # (M, 1 + K), column 0 the positive
        return (torch.logsumexp(logits, dim=1) - positive[:, 0]).mean()


class TokenNCELoss(nn.Module):
    """Token-wise NCE with a learned student projection and a FIFO queue of raw teacher keys.

    Usage per optimizer step: `loss = nce(student_h, teacher_h, token_mask)` for each micro-batch (the loss uses the
    queue as it was at the start of the step), `backward()`, then `nce.update()` once, which pushes the teacher keys
    of the tokens used in training-mode forwards since the last update. Pushing after backward matters (pitfall:
    the matmul against the queue is saved for backward).

    Args:
        student_dim: Ds, the student hidden size.
        teacher_dim: Dt, the teacher hidden size (the queue's key size).
        queue_size: K (default 4,096, the paper's best).
        temperature: τ (default 0.07, MoCo's; the paper's value is unknown).
        max_tokens: At most this many valid tokens per forward, chosen uniformly at random (None: all).
        generator: RNG for the sub-sampling (a CPU `torch.Generator`); None uses the global CPU RNG, which the
            training checkpoints save and restore (exact resume). A given generator is not checkpointed.
    """

    def __init__(self, student_dim: int, teacher_dim: int, *, queue_size: int = 4096, temperature: float = 0.07,
                 max_tokens: int | None = None, generator: torch.Generator | None = None) -> None:  # fmt: skip
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 or None, got {max_tokens}")
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.generator = generator
        self.projection = nn.Linear(student_dim, teacher_dim)
        self.queue = FeatureQueue(teacher_dim, queue_size)  # buffers -> saved in state_dict
        self._pending: list[Tensor] = []  # teacher keys used since the last update(), (M_i, Dt) each

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, max_tokens={self.max_tokens}"

    def select(self, token_mask: Tensor) -> Tensor:
        """Flat indices (into B·N) of the tokens used this step: the valid ones, sub-sampled to `max_tokens`.

        Args:
            token_mask: (B, N) bool.

        Returns:
            (M,) long indices, M ≤ max_tokens.
        """
        index = token_mask.reshape(-1).nonzero().squeeze(1)  # (M_valid,)
        if self.max_tokens is not None and index.numel() > self.max_tokens:
            order = torch.randperm(index.numel(), generator=self.generator)[: self.max_tokens]  # CPU RNG
            index = index[order.to(index.device)]  # (max_tokens,)
        return index

    def forward(self, student_tokens: Tensor, teacher_tokens: Tensor, token_mask: Tensor) -> Tensor:
        """Loss of this micro-batch against the current queue.

        Args:
            student_tokens: (B, N, Ds) student hidden states of one layer.
            teacher_tokens: (B, N, Dt) teacher hidden states of the mapped layer (raw, unprojected).
            token_mask: (B, N) bool, True for tokens to distil (no padding, no special tokens).

        Returns:
            Scalar fp32 loss. In training mode the selected teacher keys are kept for `update()`.
        """
        batch, tokens = token_mask.shape
        if student_tokens.shape[:2] != (batch, tokens) or teacher_tokens.shape[:2] != (batch, tokens):
            raise InputError(f"token_nce: student {tuple(student_tokens.shape)}, teacher {tuple(teacher_tokens.shape)} "
                             f"and token_mask {tuple(token_mask.shape)} do not share (B, N)")  # fmt: skip
        if teacher_tokens.shape[2] != self.queue.dim:
            raise InputError(f"token_nce: teacher hidden size {teacher_tokens.shape[2]} != {self.queue.dim}")
        index = self.select(token_mask.bool())  # (M,)
        student = self.projection(student_tokens.reshape(batch * tokens, -1)[index])  # (M, Dt)
        teacher = teacher_tokens.reshape(batch * tokens, -1)[index].detach()  # (M, Dt)
        loss = token_nce(student, teacher, self.queue.negatives(), self.temperature)
        if self.training:
            self._pending.append(teacher.float())  # a gathered copy, not a view of the input
        return loss

    @torch.no_grad()
    def update(self, teacher_tokens: Tensor | None = None) -> None:
        """Push teacher keys into the queue; call once per optimizer step AFTER backward (and on every DDP rank).

        Args:
            teacher_tokens: None (the usual case) pushes the keys of the tokens used by training-mode forwards since
                the last update, in order. Otherwise (M, Dt) keys to push instead (the pending keys are dropped).
        """
        if teacher_tokens is None:
            keys = torch.cat(self._pending) if self._pending else self.queue.queue.new_zeros(0, self.queue.dim)
        else:
            keys = teacher_tokens  # (M, Dt); push() checks the shape
        self._pending = []
        self.queue.push(keys)  # collective under DDP: every rank pushes, even zero keys
