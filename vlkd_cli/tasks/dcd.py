"""The DCD training module: a frozen cross-encoder teacher mines hard negative captions for each image, and the
student learns from the teacher's scores on them, weighted by how hard each sample is (Rao et al., "Dynamic
Contrastive Distillation for Image-Text Retrieval", IEEE TMM 2023; released code raojay7/DCD `compute_irtr`).

Per training item (an image and its positive caption) the collator builds a pool of P captions: the positive in
column 0 and P − 1 captions drawn uniformly from OTHER images of the training set (the released code draws from
all captions, so a caption of the same image can become a "negative": pitfall D10 — never here; the pitfall codes
are those of docs/methods.md, "Pitfalls"), or from a retriever's top candidates of other images
(`tasks/dcd_pools.py`). Then, per step:

    t_pool = teacher(image, pool)                      (B, P)  ITM logits, eval mode, no gradient (D9)
    cols   = [0] + top_{K−1}(t_pool[:, 1:]) + 1        (B, K)  the positive first, then the hardest negatives
    t      = t_pool[b, cols]                           (B, K)  teacher columns aligned with the student's (D1 fixed)
    s      = student(image, pool[cols])                (B, K)  cross-encoder: ITM logits; dual: scale · cosine
    L      = w_dcd · dcd_loss(s, t; α, T) + w_task · L_task(student)

`dcd_loss` is documented in `vlkd_cli.losses.dcd`. The optional task term is the student's own objective on the
positive pairs (ITM with in-batch negatives, or the dual encoder's InfoNCE). The teacher is not a registered
submodule (out of the optimizer, DDP and checkpoints), so it stays bit-identical (pitfall D5).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.vl_datasets import Sample, TrainBatch, VLCollator, reindexed
from vlkd_cli.losses.dcd import DCDLoss
from vlkd_cli.structures.vl_batch import VLBatch, select_rows
from vlkd_cli.tasks.dcd_pools import STUDENT, candidates_per_pool, draw_from_candidates, image_rows, retriever_candidates
from vlkd_cli.tasks.distillvlm import DistillTask


class DCDBatch(TrainBatch):
    """B training items, each with a pool of P captions, as pairs for the student and for the teacher.

    `vl` holds the B positive pairs (for the task term); `student_pool` and `teacher_pool` hold the B·P pairs
    (image b with caption j at row b·P + j; column 0 is the positive), with student and teacher features.
    """

    def __init__(self, vl: VLBatch, targets: dict[str, Tensor], student_pool: VLBatch, teacher_pool: VLBatch,
                 pool_size: int) -> None:  # fmt: skip
        super().__init__(vl, targets)
        self.student_pool, self.teacher_pool, self.pool_size = student_pool, teacher_pool, pool_size

    def to(self, device: torch.device) -> DCDBatch:
        return DCDBatch(self.vl.to(device), {k: v.to(device) for k, v in self.targets.items()},
                        self.student_pool.to(device), self.teacher_pool.to(device), self.pool_size)  # fmt: skip


def hard_candidates(teacher_pool: Tensor, k: int) -> Tensor:
    """(B, P) teacher scores, column 0 the positive → (B, k) column indices: 0, then the k − 1 highest-scored
    negatives in descending order (ties → lower column)."""
    negatives = torch.topk(teacher_pool[:, 1:], k - 1, dim=1, sorted=True).indices + 1  # (B, k-1)
    return torch.cat([torch.zeros_like(negatives[:, :1]), negatives], dim=1)  # (B, k)


class DCDModule(nn.Module):
    """forward(DCDBatch) → {"loss", "dcd_loss", "dcd_kd", "dcd_hard", ["task_loss"]}."""

    def __init__(self, student: nn.Module, teacher: nn.Module, *, weights: dict[str, float], k: int = 8,
                 alpha: float = 0.2, temperature: float = 1.0, reproduce_released: bool = False,
                 candidates: Tensor | None = None) -> None:  # fmt: skip
        super().__init__()
        if candidates is not None:  # a retriever's candidate table (tasks/dcd_pools.py): checkpoints keep it
            self.register_buffer("pool_candidates", candidates)
            self.register_buffer("steps_done", torch.zeros((), dtype=torch.int64))
        self.student = student
        self._teacher = [teacher.eval().requires_grad_(False)]  # a list: hidden from state_dict, DDP and optimizer
        self.weights = {name: float(w) for name, w in weights.items() if float(w) != 0.0}
        self.k, self.reproduce_released = k, reproduce_released
        self.dcd = DCDLoss(alpha=alpha, temperature=temperature, reproduce_released=reproduce_released)  # stateless
        self.dual = student.config.get("arch", "cross") == "dual"

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def train(self, mode: bool = True) -> DCDModule:
        super().train(mode)
        # deterministic hard-negative ranking: no dropout in the teacher (pitfall D9, docs/methods.md "Pitfalls")
        self.teacher.eval()
        return self

    def forward(self, batch: DCDBatch) -> dict[str, Tensor]:
        if "dcd" not in self.weights:  # the no-DCD control (--loss task=1): the teacher is not run
            task = self.student.forward_loss(*self.student.prepare(batch.vl, batch.targets))["loss"]
            return {"loss": self.weights.get("task", 0.0) * task, "task_loss": task}
        pool = batch.pool_size
        with torch.no_grad():
            t_pool = self.teacher.itm_scores(batch.teacher_pool).float().view(-1, pool)  # (B, P)
        cols = hard_candidates(t_pool, self.k)  # (B, K)
        if self.reproduce_released:  # D1: the teacher's top-K in sorted order, whatever the student's columns
            teacher = torch.topk(t_pool, self.k, dim=1).values  # (B, K)
        else:
            teacher = t_pool.gather(1, cols)  # (B, K)
        student = self.student_scores(batch.student_pool, cols, pool)  # (B, K)
        parts = self.dcd(student, teacher, return_parts=True)
        out = {"dcd_loss": parts["loss"], "dcd_kd": parts["dcd_kd_loss"].detach(),
               "dcd_hard": parts["dcd_hard_loss"].detach()}  # fmt: skip
        total = self.weights.get("dcd", 0.0) * parts["loss"]
        if "task" in self.weights:
            out["task_loss"] = self.student.forward_loss(*self.student.prepare(batch.vl, batch.targets))["loss"]
            total = total + self.weights["task"] * out["task_loss"]
        return {"loss": total, **out}

    def student_scores(self, pool_vl: VLBatch, cols: Tensor, pool: int) -> Tensor:
        """(B, K) student scores of the chosen pairs: ITM logits, or the dual encoder's scaled cosine."""
        b, k = cols.shape
        rows = (torch.arange(b, device=cols.device)[:, None] * pool + cols).flatten()  # (B·K,)
        chosen = select_rows(pool_vl, rows)
        if not self.dual:
            return self.student.itm_scores(chosen).float().view(b, k)
        images = select_rows(pool_vl, torch.arange(b, device=cols.device) * pool)  # (B,) one row per image
        image_emb = self.student.encode_image(images.region_features, images.region_boxes, images.region_mask)
        text_emb = self.student.encode_text(chosen.caption_ids, chosen.caption_mask).view(b, k, -1)  # (B, K, P)
        return self.student.scale() * torch.einsum("bd,bkd->bk", image_emb, text_emb).float()


def draw_negatives(image_ids: np.ndarray, own: int, count: int) -> np.ndarray:
    """`count` indices (uniform, with replacement) of training samples whose image is not `own`.

    Uses numpy's global generator, which the training checkpoints save and restore, so a resumed run draws the
    same pools. (B·(P−1) draws per batch, redrawing only the rare same-image hits.)
    """
    picks = np.random.randint(0, len(image_ids), size=count)
    same = image_ids[picks] == own
    while same.any():
        picks[same] = np.random.randint(0, len(image_ids), size=int(same.sum()))
        same = image_ids[picks] == own
    return picks


class DCDTask(DistillTask):
    """Distill's task with DCD batches: each positive pair plus a pool of captions of other images."""

    def __init__(self, cfg, module: DCDModule, tokenizer, data, student_collator: VLCollator,
                 teacher_collator: VLCollator, teacher_regions: Regions | None, lineage: dict) -> None:  # fmt: skip
        super().__init__(cfg, module, tokenizer, data, student_collator, teacher_collator, teacher_regions, lineage)
        self.pool_size = cfg.dcd_pool
        self.train_image_ids = np.asarray([s.image_id for s in data.train], dtype=np.int64)
        self.rows = image_rows(data.train)
        mines = cfg.dcd_pool_source == STUDENT and "dcd" in module.weights
        self.refresh_every = cfg.dcd_pool_refresh if mines else 0

    def collate(self, samples: list[Sample]) -> DCDBatch:
        positives = self.collator(samples)
        if "dcd" not in self.module.weights:  # the no-DCD control: no pools to build (the teacher is not run)
            return DCDBatch(positives.vl, positives.targets, positives.vl, positives.vl, 1)
        pool: list[Sample] = []
        for sample in samples:
            pool.append(sample)  # column 0: the positive
            for j in self._negatives(sample.image_id):
                pool.append(Sample(sample.image_index, sample.image_id, self.data.train[j].text))
        teacher_pool = pool
        if self.teacher_regions is not None:
            teacher_pool = reindexed(pool, self.teacher_regions)
        return DCDBatch(positives.vl, positives.targets, self.collator(pool).vl, self.teacher_collator(teacher_pool).vl,
                        self.pool_size)  # fmt: skip

    def _negatives(self, image_id: int) -> np.ndarray:
        """P − 1 training-caption indices: from the retriever's candidates of the image, else at random."""
        if hasattr(self.module, "pool_candidates"):
            return draw_from_candidates(self.module.pool_candidates, self.rows[image_id], self.pool_size - 1)
        return draw_negatives(self.train_image_ids, image_id, self.pool_size - 1)

    def after_step(self) -> None:
        """With `--dcd-pool-source student`: re-rank the candidates with the student every `refresh_every` steps."""
        if not self.refresh_every:
            return
        self.module.steps_done += 1
        if int(self.module.steps_done) % self.refresh_every == 0:
            table = retriever_candidates(self.module.student, self.collator, self.data.train,
                                         candidates_per_pool(self.pool_size))  # fmt: skip
            self.module.pool_candidates.copy_(table)
