"""`vlkd distill --method distillvlm`: train a student against an adapted teacher (DistillVLM, Fang et al. 2021).

The student reads `student_features` and the teacher `teacher_features` of the SAME regions artifact, with the
same tokens in the same layout (a preset student takes the teacher's tokenizer and layout). Before any training
the inputs are checked for alignment and a mismatch is refused (exit 3): the regions' `vlkd.boxes_sha256` must be
the teacher's `adapted_to_boxes_sha256` (or the boxes it was trained on with teacher features), the teacher's
feature backbone must be the regions' teacher backbone, and the tokenizers must agree. The paper's
no-adaptation ablation runs only with `--teacher-regions OTHER --allow-misaligned`: the teacher then reads its own
regions, tokens are matched by position and slots that are padding on either side are masked out of the losses.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from vlkd_cli.artifacts.feature_checks import check_backbone_weights
from vlkd_cli.artifacts.model_dir import load_model_dir
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.task_data import TaskData, load_task_data
from vlkd_cli.data.vl_datasets import VLCollator
from vlkd_cli.distributed import init_distributed
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.losses import map_layers
from vlkd_cli.models.factory import model_from_config
from vlkd_cli.models.tokenizer import load_tokenizer
from vlkd_cli.runtime import resolve_device, seed_everything
from vlkd_cli.stages.training_configs import DistillConfig
from vlkd_cli.tasks import validation
from vlkd_cli.tasks.distillvlm import DistillModule, DistillTask
from vlkd_cli.tasks.student import build_student, check_distillation_features, distill_lineage, with_student_arch
from vlkd_cli.train.loop import prepare_out_dir, train


def check_alignment(cfg: DistillConfig, teacher_config: dict, regions: Regions, data: TaskData) -> None:
    """Refuse (exit 3) a teacher that was not adapted to these regions, unless the ablation is asked for.

    The key compared is that of the regions sets holding the TRAINING images (`Regions.key_for`): validation
    images are only scored by the student and need no adaptation, so a teacher adapted on train distils on
    `--regions train --regions val`."""
    if cfg.teacher_regions is not None and not cfg.allow_misaligned:
        raise UsageError("--teacher-regions runs the no-adaptation ablation: add --allow-misaligned to confirm")
    if cfg.teacher_regions is not None:
        return
    training = [s.image_index for s in data.train]
    key = regions.key_for(training)
    adapted = teacher_config.get("adapted_to_boxes_sha256")
    trained_here = teacher_config.get("regions_boxes_sha256") == key and teacher_config.get("features") == "teacher"
    if adapted != key and not trained_here:
        raise InputError(
            f"teacher is not adapted to these regions: its adapted_to_boxes_sha256 is {str(adapted)[:16]}..., "
            f"the key of the regions of the training images ({', '.join(map(str, regions.sources_of(training)))}) is "
            f"{key[:16]}...; run `vlkd adapt-teacher` on these regions "
            "(or, for the no-adaptation ablation, --teacher-regions TEACHER_OWN_REGIONS --allow-misaligned)",
            cfg.teacher,
        )
    check_backbone_weights(teacher_config, regions, "teacher")


def run(cfg: DistillConfig) -> dict[str, Any]:
    if cfg.method != "distillvlm":
        raise UsageError(f"--method {cfg.method} is not this stage's: `vlkd distill` runs stages.dcd for --method dcd")
    cfg = with_student_arch(cfg)
    if cfg.student_features != "student":
        raise UsageError("a DistillVLM student reads the student features (its detector's boxes and backbone): "
                         "--student-features teacher is for --method dcd")  # fmt: skip
    if cfg.arch != "cross":
        raise UsageError(f"a {cfg.arch} student is for --method dcd (retrieval); DistillVLM distils cross-encoders")
    if cfg.task not in ("caption", "vqa", "pretrain"):
        raise UsageError(f"--method distillvlm distils --task caption, vqa or pretrain, not {cfg.task}")
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.device)
    init_distributed(device)
    regions = Regions(cfg.regions)
    teacher_config, teacher_weights, _ = load_model_dir(cfg.teacher, "model")
    if teacher_config.get("task") != cfg.task:
        raise InputError(f"teacher is a {teacher_config.get('task')} model, --task is {cfg.task}", cfg.teacher)
    teacher_regions = Regions(cfg.teacher_regions) if cfg.teacher_regions is not None else None
    teacher = model_from_config(teacher_config)
    teacher.load_state_dict(teacher_weights)
    teacher_tokenizer = load_tokenizer(cfg.teacher)
    data = load_task_data(cfg.data, regions, source=str(cfg.data.annotations))
    check_alignment(cfg, teacher_config, regions, data)
    if cfg.task == "vqa" and data.answers != teacher_config.get("answers"):
        raise InputError("the answer vocabulary of these annotations differs from the teacher's", cfg.teacher)
    check_distillation_features(data, regions, teacher_regions)
    prepare_out_dir(cfg.out, cfg.train)
    student, tokenizer = build_student(cfg, teacher_config, teacher_tokenizer, regions, teacher)
    pairs = map_layers(student.vl.num_layers, teacher.vl.num_layers, cfg.layers)
    module = DistillModule(student, teacher.to(device), weights=cfg.losses, layer_pairs=pairs,
                           temperature=cfg.temperature, nce_temperature=cfg.nce_temperature,
                           queue_size=cfg.queue_size, nce_max_tokens=cfg.nce_max_tokens,
                           aligned=cfg.teacher_regions is None)  # fmt: skip
    kwargs = {"batch_kwargs": student.batch_kwargs(), "use_tags": cfg.use_tags,
                  "num_answers": len(data.answers) if data.answers else None}  # fmt: skip
    student_collator = VLCollator(regions, tokenizer, features="student", **kwargs)
    teacher_collator = VLCollator(teacher_regions or regions, tokenizer, features="teacher", **kwargs)
    distillation = {"method": cfg.method, "losses": cfg.losses, "layer_pairs": pairs, "temperature": cfg.temperature,
                    "nce_temperature": cfg.nce_temperature, "queue_size": cfg.queue_size,
                    "aligned": cfg.teacher_regions is None}  # fmt: skip
    lineage = distill_lineage(cfg, regions, data, distillation)
    task = DistillTask(cfg, module, tokenizer, data, student_collator, teacher_collator, teacher_regions, lineage)
    run_config = json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k != "train"}, default=str))
    result = train(task, cfg.train, out=cfg.out, device=device, command="distill", run_config=run_config)
    return {"steps": result.steps, "best_metric": result.best_metric, "best_step": result.best_step,
            "metric": validation.METRICS[cfg.task], "losses": {k: v for k, v in cfg.losses.items() if v},
            "layer_pairs": pairs}  # fmt: skip


