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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from vlkd_cli.artifacts.io import input_record
from vlkd_cli.artifacts.model_dir import CONFIG_NAME, load_model_dir
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.artifacts.schema import SCHEMA_VERSIONS
from vlkd_cli.data.vl_datasets import Sample, VLCollator
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.eval import validation
from vlkd_cli.losses import map_layers
from vlkd_cli.models.factory import create_vl_model, model_from_config
from vlkd_cli.models.presets import list_presets
from vlkd_cli.models.tokenizer import load_tokenizer, tokenizer_fingerprint
from vlkd_cli.runtime import resolve_device, seed_everything
from vlkd_cli.stages.dcd_module import DCD_TERMS, DEFAULT_DCD_WEIGHTS
from vlkd_cli.stages.distill_module import DISTILL_TERMS, DistillBatch, DistillModule
from vlkd_cli.stages.feature_checks import check_backbone_weights
from vlkd_cli.stages.finetune import FinetuneTask, write_model_dir
from vlkd_cli.stages.task_data import DataConfig, load_task_data
from vlkd_cli.train.distributed import init_distributed
from vlkd_cli.train.loop import TrainConfig, prepare_out_dir, train

DEFAULT_WEIGHTS = {"task": 1.0, "attention_mse": 10.0, "token_nce": 0.5, "logit_kd": 1.0}


@dataclass(frozen=True)
class DistillConfig:
    teacher: Path
    student: str
    regions: Path
    task: str
    out: Path
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    method: str = "distillvlm"
    losses: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    layers: str = "all"
    temperature: float = 2.0
    nce_temperature: float = 0.07
    queue_size: int = 4096
    nce_max_tokens: int = 256
    teacher_regions: Path | None = None
    allow_misaligned: bool = False
    arch: str = "cross"  # a preset student's architecture (dual: DCD retrieval only)
    dcd_pool: int = 16
    dcd_k: int = 8
    dcd_alpha: float = 0.2
    dcd_temperature: float = 1.0
    dcd_released: bool = False
    use_tags: bool = True
    eval_batch_size: int = 64
    device: str = "auto"


def parse_loss_weights(specs: list[str] | None, method: str = "distillvlm") -> dict[str, float]:
    """`--loss NAME=WEIGHT` (repeatable) → the method's weights; unspecified terms are 0 once any is given."""
    terms, defaults = (DCD_TERMS, DEFAULT_DCD_WEIGHTS) if method == "dcd" else (DISTILL_TERMS, DEFAULT_WEIGHTS)
    if not specs:
        return dict(defaults)
    weights = {name: 0.0 for name in terms}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or name.strip() not in terms:
            raise UsageError(f"--loss takes NAME=WEIGHT with NAME one of {', '.join(terms)} for --method {method}, "
                             f"got {spec!r}")  # fmt: skip
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--loss {spec}: the weight is not a number") from None
    return weights


def check_alignment(cfg: DistillConfig, teacher_config: dict, regions: Regions) -> None:
    """Refuse (exit 3) a teacher that was not adapted to these regions, unless the ablation is asked for."""
    if cfg.teacher_regions is not None and not cfg.allow_misaligned:
        raise UsageError("--teacher-regions runs the no-adaptation ablation: add --allow-misaligned to confirm")
    if cfg.teacher_regions is not None:
        return
    key = regions.boxes_sha256
    adapted = teacher_config.get("adapted_to_boxes_sha256")
    trained_here = teacher_config.get("regions_boxes_sha256") == key and teacher_config.get("features") == "teacher"
    if adapted != key and not trained_here:
        raise InputError(
            f"teacher is not adapted to these regions: its adapted_to_boxes_sha256 is {str(adapted)[:16]}..., "
            f"the regions' vlkd.boxes_sha256 is {key[:16]}...; run `vlkd adapt-teacher` on these regions "
            "(or, for the no-adaptation ablation, --teacher-regions TEACHER_OWN_REGIONS --allow-misaligned)",
            cfg.teacher,
        )
    check_backbone_weights(teacher_config, regions, "teacher")


def build_student(cfg: DistillConfig, teacher_config: dict, teacher_tokenizer, regions: Regions):
    """A preset student takes the teacher's tokenizer and layout; a directory must already share them."""
    layout = teacher_config["layout"]
    common = {"task": cfg.task, "arch": cfg.arch, "region_feature_dim": regions.student_dim, "answers": teacher_config.get("answers"),
                  "max_text_len": layout["max_text_len"], "max_tag_len": layout["max_tag_len"],
                  "max_regions": layout["max_regions"]}  # fmt: skip
    if cfg.student in list_presets():
        return create_vl_model(preset=cfg.student, tokenizer=teacher_tokenizer, **common), teacher_tokenizer
    path = Path(cfg.student)
    if not path.is_dir():
        raise UsageError(f"--student must be a preset ({', '.join(list_presets())}) or a model directory", path)
    tokenizer = load_tokenizer(path)
    if tokenizer_fingerprint(tokenizer) != tokenizer_fingerprint(teacher_tokenizer):
        raise InputError("student and teacher tokenizers differ: token i would not mean the same in both", path)
    config_path = path / CONFIG_NAME
    if config_path.is_file() and "vlkd_kind" in json.loads(config_path.read_text()):
        config, weights, _ = load_model_dir(path, "model")
        if config.get("layout") != layout or config.get("task") != cfg.task or config.get("arch", "cross") != cfg.arch:
            raise InputError(f"student layout/task/arch {config.get('layout')}/{config.get('task')}/"
                             f"{config.get('arch', 'cross')} differ from the teacher's {layout}/{cfg.task}/{cfg.arch}",
                             path)  # fmt: skip
        model = model_from_config(config)
        model.load_state_dict(weights)
        return model, tokenizer
    return create_vl_model(hf_dir=path, **common), tokenizer


class DistillTask(FinetuneTask):
    """Finetune's task with the distillation module and a collator that also builds the teacher's view."""

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

    def save_model(self, out: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str],
                   summary: dict[str, Any]) -> None:  # fmt: skip
        weights = {k[len("student.") :]: v for k, v in state_dict.items() if k.startswith("student.")}
        config = {**self.module.student.config, **self.lineage, "vlkd_kind": "model",
                  "vlkd_schema_version": SCHEMA_VERSIONS["model"], "training": summary}  # fmt: skip
        metadata = {**metadata, "vlkd.inputs": json.dumps(self.lineage["inputs"])}
        write_model_dir(out, config, weights, metadata, self.tokenizer)


class _StudentView(torch.nn.Module):
    """Lets finetune's evaluation (which reads `module.model`) score the student."""

    def __init__(self, student: torch.nn.Module) -> None:
        super().__init__()
        self.model = student


def run(cfg: DistillConfig) -> dict[str, Any]:
    if cfg.method == "dcd":
        from vlkd_cli.stages.dcd import run_dcd

        return run_dcd(cfg)
    if cfg.method != "distillvlm":
        raise UsageError(f"--method must be distillvlm or dcd, got {cfg.method!r}")
    if cfg.arch != "cross":
        raise UsageError("--arch dual is for --method dcd (retrieval); DistillVLM distils cross-encoders")
    if cfg.task not in ("caption", "vqa", "pretrain"):
        raise UsageError(f"--method distillvlm distils --task caption, vqa or pretrain, not {cfg.task}")
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.device)
    init_distributed(device)
    regions = Regions(cfg.regions)
    teacher_config, teacher_weights, _ = load_model_dir(cfg.teacher, "model")
    if teacher_config.get("task") != cfg.task:
        raise InputError(f"teacher is a {teacher_config.get('task')} model, --task is {cfg.task}", cfg.teacher)
    check_alignment(cfg, teacher_config, regions)
    teacher_regions = Regions(cfg.teacher_regions) if cfg.teacher_regions is not None else None
    teacher = model_from_config(teacher_config)
    teacher.load_state_dict(teacher_weights)
    teacher_tokenizer = load_tokenizer(cfg.teacher)
    data = load_task_data(cfg.data, regions, source=str(cfg.data.annotations))
    if cfg.task == "vqa" and data.answers != teacher_config.get("answers"):
        raise InputError("the answer vocabulary of these annotations differs from the teacher's", cfg.teacher)
    prepare_out_dir(cfg.out, cfg.train)
    student, tokenizer = build_student(cfg, teacher_config, teacher_tokenizer, regions)
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
    lineage = distill_lineage(cfg, regions, distillation)
    task = DistillTask(cfg, module, tokenizer, data, student_collator, teacher_collator, teacher_regions, lineage)
    run_config = json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k != "train"}, default=str))
    result = train(task, cfg.train, out=cfg.out, device=device, command="distill", run_config=run_config)
    return {"steps": result.steps, "best_metric": result.best_metric, "best_step": result.best_step,
            "metric": validation.METRICS[cfg.task], "losses": {k: v for k, v in cfg.losses.items() if v},
            "layer_pairs": pairs}  # fmt: skip


def distill_lineage(cfg: DistillConfig, regions: Regions, distillation: dict[str, Any]) -> dict[str, Any]:
    """The student's config.json lineage: its features, the teacher it was distilled from, and how."""
    return {
        "features": "student",
        "feature_backbone": regions.metadata.get("vlkd.student_backbone"),
        "feature_backbone_sha256": regions.metadata.get("vlkd.student_backbone_sha256"),
        "regions_boxes_sha256": regions.boxes_sha256,
        "initialized_from": f"preset:{cfg.student}" if cfg.student in list_presets() else str(cfg.student),
        "use_tags": cfg.use_tags,
        "distilled_from": input_record(cfg.teacher, "model"),
        "distillation": distillation,
        "inputs": [input_record(p, "regions") for p in regions.paths]
        + [input_record(cfg.data.annotations, "annotations")],
    }
