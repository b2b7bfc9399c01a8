"""The DistillVLM training module: the student's task loss plus attention MSE, token-wise NCE and logit KD
against a frozen teacher that sees the same tokens (Fang et al., "Compressing Visual-linguistic Model via
Knowledge Distillation", ICCV 2021).

    L = w_task·L_task + w_att·L_att + w_nce·L_nce + w_kd·L_kd

- L_att = mean over mapped layers (s, t) of `attention_mse(A_s, A_t, query_mask)` (post-softmax, pre-dropout maps;
  per head when head counts match, head-averaged otherwise);
- L_nce = token-wise NCE between the projected student states and the raw teacher states of the last mapped
  layer, negatives = teacher states of earlier steps held in a queue (pushed after the optimizer step);
- L_kd = temperature-scaled KL on caption-token logits, or binary KD on VQA answer logits (multi-label BCE head).

Each term is a module of `vlkd_cli.losses` (`AttentionMSELoss`, `TokenNCELoss`, `LogitKDLoss`); the term names and
default weights are `tasks/terms.py`, which `--loss NAME=WEIGHT` is checked against. The teacher is not a
registered submodule: it stays out of the optimizer, DDP and the checkpoints (it is frozen
and read from its own directory), while the student, the NCE projection and the queue are saved.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.vl_datasets import Sample, TrainBatch, VLCollator
from vlkd_cli.losses import AttentionMSELoss, LogitKDLoss, TokenNCELoss
from vlkd_cli.structures.vl_batch import VLBatch
from vlkd_cli.tasks.finetune import FinetuneTask


class DistillBatch(TrainBatch):
    """A student batch plus the teacher's view of it (same tokens; teacher features)."""

    def __init__(self, vl: VLBatch, targets: dict[str, Tensor], teacher_vl: VLBatch) -> None:
        super().__init__(vl, targets)
        self.teacher_vl = teacher_vl

    def to(self, device: torch.device) -> DistillBatch:
        return DistillBatch(self.vl.to(device), {k: v.to(device) for k, v in self.targets.items()},
                            self.teacher_vl.to(device))  # fmt: skip


class DistillModule(nn.Module):
    """forward(DistillBatch) → {"loss", "task_loss", "attention_mse_loss", "token_nce_loss", "logit_kd_loss"} (the
    terms of nonzero weight). With the task term alone (the no-KD control) the teacher is not run."""

    def __init__(self, student: nn.Module, teacher: nn.Module, *, weights: dict[str, float],
                 layer_pairs: list[tuple[int, int]], temperature: float = 2.0, nce_temperature: float = 0.07,
                 queue_size: int = 4096, nce_max_tokens: int = 256, aligned: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.student = student
        self._teacher = [teacher.eval().requires_grad_(False)]  # a list: hidden from state_dict, DDP and optimizer
        self.weights = {k: float(v) for k, v in weights.items() if float(v) != 0.0}
        self.layer_pairs = layer_pairs
        self.aligned = aligned  # False: the no-adaptation ablation (teacher on its own regions and tags)
        self.attention = AttentionMSELoss(pairs=layer_pairs)  # stateless
        vqa = student.config["task"] == "vqa"  # multi-label BCE head: per-answer binary KD, summed like its BCE
        self.logit_kd = LogitKDLoss(temperature=temperature, kind="sigmoid" if vqa else "softmax",
                                    reduction="sum" if vqa else "mean")  # stateless  # fmt: skip
        self.nce = None
        if "token_nce" in self.weights:  # projection + queue: trained / checkpointed with the student
            self.nce = TokenNCELoss(student.vl.hidden_size, teacher.vl.hidden_size, queue_size=queue_size,
                                    temperature=nce_temperature, max_tokens=nce_max_tokens)  # fmt: skip

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def train(self, mode: bool = True) -> DistillModule:
        super().train(mode)
        # always: deterministic teacher, no dropout in its maps (pitfall A3, docs/methods.md "Pitfalls")
        self.teacher.eval()
        return self

    def forward(self, batch: DistillBatch) -> dict[str, Tensor]:
        need_att, need_nce = "attention_mse" in self.weights, "token_nce" in self.weights
        vl, teacher_vl, targets = self._prepare(batch)
        losses, s_out = self.student.forward_loss(vl, targets, return_outputs=True, output_attentions=need_att,
                                                  output_hidden_states=need_nce)  # fmt: skip
        parts = {"task_loss": losses["loss"]}
        if not (need_att or need_nce or "logit_kd" in self.weights):
            return {"loss": self.weights.get("task", 0.0) * parts["task_loss"], **parts}  # the no-KD control
        with torch.no_grad():
            _, t_out = self.teacher.forward_loss(teacher_vl, targets, return_outputs=True, output_attentions=need_att,
                                                 output_hidden_states=need_nce)  # fmt: skip
        valid = vl.query_mask & teacher_vl.query_mask  # (B, N) tokens that mean the same in both
        if need_att:
            parts["attention_mse_loss"] = self.attention(s_out.attentions, t_out.attentions, valid)
        if need_nce:
            parts["token_nce_loss"] = self._nce(s_out.hidden_states, t_out.hidden_states, valid)
        if "logit_kd" in self.weights:
            parts["logit_kd_loss"] = self.logit_kd(s_out.logits, t_out.logits.detach())
        total = sum(self.weights.get(name[: -len("_loss")], 0.0) * value for name, value in parts.items())
        return {"loss": total, **parts}

    def _prepare(self, batch: DistillBatch) -> tuple[VLBatch, VLBatch, dict[str, Tensor]]:
        """The objective's random input changes (MLM masks, ITM negatives), identical for student and teacher:
        both draw from generators seeded alike (the seed comes from the global RNG, so resume stays exact)."""
        seed = int(torch.randint(0, 2**62, (1,)))
        vl, targets = self.student.prepare(batch.vl, batch.targets, generator=torch.Generator().manual_seed(seed))
        teacher_vl, _ = self.teacher.prepare(batch.teacher_vl, batch.targets,
                                             generator=torch.Generator().manual_seed(seed))  # fmt: skip
        if self.aligned and not torch.equal(vl.input_ids, teacher_vl.input_ids):
            raise RuntimeError("student and teacher inputs diverged after the objective's masking")
        return vl, teacher_vl, targets

    def _nce(self, student_states, teacher_states, valid: Tensor) -> Tensor:
        """NCE on the last mapped layer; hidden_states[l + 1] is the output of layer l (index 0: embeddings)."""
        s_layer, t_layer = self.layer_pairs[-1]
        return self.nce(student_states[s_layer + 1], teacher_states[t_layer + 1].detach(), valid)

    def push_keys(self) -> None:
        """Enqueue this step's teacher keys, after backward, on every rank (a collective under DDP)."""
        if self.nce is not None:
            self.nce.update()


class DistillTask(FinetuneTask):
    """Finetune's task with the distillation module and a collator that also builds the teacher's view."""

    saved_module = "student"

    def __init__(self, cfg, module: DistillModule, tokenizer, data, student_collator: VLCollator,
                 teacher_collator: VLCollator, teacher_regions: Regions | None, lineage: dict) -> None:  # fmt: skip
        super().__init__(cfg, module.student, tokenizer, data, student_collator, lineage)
        self.module = module
        self.teacher_collator, self.teacher_regions = teacher_collator, teacher_regions

    def collate(self, samples: list[Sample]) -> DistillBatch:
        student = self.collator(samples)
        if self.teacher_regions is not None:  # ablation: the teacher's own regions of the same images
            samples = [Sample(self.teacher_regions.index_of(s.image_id), s.image_id, s.text, s.target) for s in samples]
        return DistillBatch(student.vl, student.targets, self.teacher_collator(samples).vl)

    def after_step(self) -> None:
        self.module.push_keys()

    def evaluate(self, module) -> dict[str, float]:
        return super().evaluate(_StudentView(module.student))


class _StudentView(torch.nn.Module):
    """Lets finetune's evaluation (which reads `module.model`) score the student."""

    def __init__(self, student: torch.nn.Module) -> None:
        super().__init__()
        self.model = student
