"""`vlkd distill --task retrieval --method dcd`: Dynamic Contrastive Distillation (Rao et al., IEEE TMM 2023).

A frozen cross-encoder teacher (ITM head) scores a pool of captions per image, the hardest negatives go to the
student with the teacher's scores, and samples are weighted by the teacher's uncertainty (see `vlkd_cli.tasks.dcd`
and `vlkd_cli.losses.dcd`). The student is a smaller cross-encoder (`--arch cross`) or a dual encoder
(`--arch dual`), both reading the student features of `--regions`; the teacher reads teacher features, of the same
regions or of its own (`--teacher-regions`: DCD pairs whole images and captions, so no token alignment — and no
teacher adaptation — is needed). Negatives are captions of other images only (pitfall D10, docs/methods.md
"Pitfalls").

A dual student should start from a contrastively trained dual model (`--student DIR`) and keep its own loss
(`--loss dcd=1 --loss task=1`): from random weights the DCD loss collapses it (measured; docs/methods.md,
"DCD training in vlkd").
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vlkd_cli.artifacts.feature_checks import check_reads_features
from vlkd_cli.artifacts.model_dir import load_model_dir
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.task_data import load_task_data
from vlkd_cli.data.vl_datasets import VLCollator
from vlkd_cli.distributed import init_distributed
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models.factory import model_from_config
from vlkd_cli.models.tokenizer import load_tokenizer
from vlkd_cli.runtime import resolve_device, seed_everything
from vlkd_cli.stages.training_configs import DistillConfig
from vlkd_cli.tasks import validation
from vlkd_cli.tasks.dcd import DCDModule, DCDTask
from vlkd_cli.tasks.dcd_pools import RANDOM, STUDENT, initial_candidates, load_retriever
from vlkd_cli.tasks.student import build_student, check_distillation_features, distill_lineage, with_student_arch
from vlkd_cli.train.loop import prepare_out_dir, train


def dual_from_scratch_warning(arch: str | None, student: str, losses: dict[str, float]) -> str | None:
    """The warning for a dual student that starts from random weights with the DCD loss alone (it collapses)."""
    if arch != "dual" or Path(student).is_dir() or losses.get("task", 0.0) > 0.0:
        return None
    return ("a dual student trained with the DCD loss alone from random weights collapses (docs/methods.md): train "
            "it with its contrastive loss first (finetune --arch dual), then pass that model as --student and add "
            "--loss task=1")  # fmt: skip


def check_dcd_inputs(cfg: DistillConfig, teacher_config: dict, teacher_regions: Regions) -> None:
    """A retrieval cross-encoder teacher whose features are the teacher features it will read."""
    if cfg.task != "retrieval":
        raise UsageError(f"--method dcd distils --task retrieval, not {cfg.task}")
    if not 2 <= cfg.dcd_k <= cfg.dcd_pool:
        raise UsageError(f"need 2 <= --dcd-k <= --dcd-pool, got --dcd-k {cfg.dcd_k} --dcd-pool {cfg.dcd_pool}")
    if teacher_config.get("task") != "retrieval" or teacher_config.get("arch", "cross") != "cross":
        raise InputError(f"the DCD teacher must be a retrieval cross-encoder (ITM head), this is a "
                         f"{teacher_config.get('task')} {teacher_config.get('arch', 'cross')} model", cfg.teacher)  # fmt: skip
    check_reads_features(teacher_config, teacher_regions, "teacher", cfg.teacher)
    if cfg.dcd_pool_source == STUDENT and cfg.arch != "dual":
        raise UsageError("--dcd-pool-source student re-ranks with a dual student: give --arch dual, or a dual model "
                         "directory as the source")  # fmt: skip
    if cfg.dcd_pool_source not in (RANDOM, STUDENT) and not Path(cfg.dcd_pool_source).is_dir():
        raise UsageError(f"--dcd-pool-source is random, student or a dual-encoder model directory, got "
                         f"{cfg.dcd_pool_source!r}")  # fmt: skip
    if cfg.dcd_pool_regions is not None and cfg.dcd_pool_source in (RANDOM, STUDENT):
        raise UsageError("--dcd-pool-regions names the regions of a --dcd-pool-source model directory")
    if cfg.student_features not in ("student", "teacher"):
        raise UsageError(f"--student-features is student or teacher, got {cfg.student_features!r}")
    if cfg.dcd_pool_refresh < 1:
        raise UsageError(f"--dcd-pool-refresh must be >= 1, got {cfg.dcd_pool_refresh}")


def run(cfg: DistillConfig) -> dict[str, Any]:
    """Train a DCD student and write its model directory; return the training summary."""
    cfg = with_student_arch(cfg)
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.device)
    init_distributed(device)
    regions = Regions(cfg.regions)
    teacher_regions = Regions(cfg.teacher_regions) if cfg.teacher_regions is not None else None
    teacher_config, teacher_weights, _ = load_model_dir(cfg.teacher, "model")
    check_dcd_inputs(cfg, teacher_config, teacher_regions or regions)
    data = load_task_data(cfg.data, regions, source=str(cfg.data.annotations))
    if len({s.image_id for s in data.train}) < 2:
        raise InputError("DCD needs training captions of at least two images (negatives come from other images)",
                         cfg.data.annotations)  # fmt: skip
    teacher = model_from_config(teacher_config)
    teacher.load_state_dict(teacher_weights)
    check_distillation_features(data, regions, teacher_regions, cfg.student_features)
    pool_regions = Regions(cfg.dcd_pool_regions) if cfg.dcd_pool_regions is not None else None
    retriever = load_retriever(cfg.dcd_pool_source, pool_regions or regions, device)
    if retriever is not None:  # the fixed retriever reads finite features of every training image
        source = pool_regions or regions
        source.check_finite(retriever.side, [source.index_of(s.image_id) if pool_regions else s.image_index
                                             for s in data.train])  # fmt: skip
    prepare_out_dir(cfg.out, cfg.train)
    student, tokenizer = build_student(cfg, teacher_config, load_tokenizer(cfg.teacher), regions, teacher)
    student_collator = VLCollator(regions, tokenizer, features=cfg.student_features,
                                  batch_kwargs=student.batch_kwargs(), use_tags=cfg.use_tags)  # fmt: skip
    source = cfg.dcd_pool_source if cfg.losses.get("dcd") else RANDOM  # the no-DCD control draws no pools
    candidates = initial_candidates(source, cfg.dcd_pool, data.train, retriever,
                                    (student.to(device), student_collator), pool_regions)  # fmt: skip
    module = DCDModule(student, teacher.to(device), weights=cfg.losses, k=cfg.dcd_k, alpha=cfg.dcd_alpha,
                       temperature=cfg.dcd_temperature, reproduce_released=cfg.dcd_released,
                       candidates=candidates)  # fmt: skip
    teacher_collator = VLCollator(teacher_regions or regions, tokenizer, features="teacher",
                                  batch_kwargs=teacher.batch_kwargs(), use_tags=cfg.use_tags)  # fmt: skip
    distillation = {"method": "dcd", "losses": cfg.losses, "pool": cfg.dcd_pool, "k": cfg.dcd_k,
                    "alpha": cfg.dcd_alpha, "temperature": cfg.dcd_temperature,
                    "reproduce_released": cfg.dcd_released, "teacher_regions": str(cfg.teacher_regions or cfg.regions),
                    "pool_source": retriever.record if retriever is not None else cfg.dcd_pool_source,
                    "pool_refresh": cfg.dcd_pool_refresh if cfg.dcd_pool_source == STUDENT else None}  # fmt: skip
    lineage = distill_lineage(cfg, regions, data, distillation)
    task = DCDTask(cfg, module, tokenizer, data, student_collator, teacher_collator, teacher_regions, lineage)
    run_config = json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k != "train"}, default=str))
    result = train(task, cfg.train, out=cfg.out, device=device, command="distill", run_config=run_config)
    return {"steps": result.steps, "best_metric": result.best_metric, "best_step": result.best_step,
            "metric": validation.METRICS["retrieval"], "losses": {k: v for k, v in cfg.losses.items() if v},
            "arch": cfg.arch, "pool": cfg.dcd_pool, "k": cfg.dcd_k}  # fmt: skip
