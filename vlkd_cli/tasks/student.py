"""The student of a distillation run (DistillVLM or DCD) and its lineage. A preset student takes the teacher's
tokenizer and layout, so token i means the same in both; a student directory must already share them. `cfg` below
is the command's `DistillConfig` (any object with its fields).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from vlkd_cli.artifacts.io import input_record
from vlkd_cli.artifacts.model_dir import CONFIG_NAME, load_model_dir
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.task_data import TaskData
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.jsonfile import read_json
from vlkd_cli.models.factory import create_vl_model, model_from_config
from vlkd_cli.models.hub import HUB_HINT, local_model_dir, source_name
from vlkd_cli.models.presets import list_presets
from vlkd_cli.models.teacher_init import start_from_teacher
from vlkd_cli.models.tokenizer import load_tokenizer, tokenizer_fingerprint


def build_student(cfg, teacher_config: dict, teacher_tokenizer, regions: Regions, teacher: nn.Module | None = None):
    """A preset student takes the teacher's tokenizer, layout and retrieval objective (`itm_negatives`: a cross
    student's task term ranks like its teacher); a directory must already share the tokenizer and layout. With
    `cfg.init_from_teacher`, the preset student (of the teacher's width) starts from the teacher's layers."""
    layout = teacher_config["layout"]
    dim = regions.teacher_dim if student_side(cfg) == "teacher" else regions.student_dim
    common = {"task": cfg.task, "arch": cfg.arch, "region_feature_dim": dim,
              "answers": teacher_config.get("answers"), "itm_negatives": int(teacher_config.get("itm_negatives") or 0),
              "max_text_len": layout["max_text_len"], "max_tag_len": layout["max_tag_len"],
              "max_regions": layout["max_regions"]}  # fmt: skip
    if cfg.student in list_presets():
        student = create_vl_model(preset=cfg.student, tokenizer=teacher_tokenizer, **common)
        if getattr(cfg, "init_from_teacher", None):
            start_from_teacher(student, teacher, cfg.init_from_teacher, str(cfg.teacher))
        return student, teacher_tokenizer
    if getattr(cfg, "init_from_teacher", None):
        raise UsageError("--init-from-teacher builds a new student: give a preset of the teacher's width as --student",
                         cfg.student)  # fmt: skip
    path = local_model_dir(cfg.student)
    if path is None:
        raise UsageError(f"--student must be a preset ({', '.join(list_presets())}), a model directory or {HUB_HINT}",
                         cfg.student)  # fmt: skip
    tokenizer = load_tokenizer(path)
    if tokenizer_fingerprint(tokenizer) != tokenizer_fingerprint(teacher_tokenizer):
        raise InputError("student and teacher tokenizers differ: token i would not mean the same in both", path)
    if _vlkd_config(path) is not None:
        config, weights, _ = load_model_dir(path, "model")
        if config.get("layout") != layout or config.get("task") != cfg.task or config.get("arch", "cross") != cfg.arch:
            raise InputError(f"student layout/task/arch {config.get('layout')}/{config.get('task')}/"
                             f"{config.get('arch', 'cross')} differ from this run's {layout}/{cfg.task}/{cfg.arch} (the "
                             "teacher's layout, --task, --arch)", path)  # fmt: skip
        model = model_from_config(config)
        model.load_state_dict(weights)
        return model, tokenizer
    return create_vl_model(hf_dir=path, hf_name=source_name(cfg.student), **common), tokenizer


def _vlkd_config(student: str | Path) -> dict[str, Any] | None:
    """The config.json of a vlkd model directory; None for a preset name or a Hugging Face directory (exit 3 for
    a config.json that is not valid JSON)."""
    path = Path(student) / CONFIG_NAME
    if not path.is_file():
        return None
    config = read_json(path)
    return config if isinstance(config, dict) and "vlkd_kind" in config else None


def with_student_arch(cfg):
    """`cfg` with its student's architecture settled: `--arch` (default cross) for a preset or a Hugging Face
    directory; a vlkd model directory's own, which an explicit different `--arch` contradicts (exit 2)."""
    config = None if cfg.student in list_presets() else _vlkd_config(cfg.student)
    if config is None:
        return replace(cfg, arch=cfg.arch or "cross")
    own = config.get("arch", "cross")
    if cfg.arch is not None and cfg.arch != own:
        raise UsageError(f"--arch {cfg.arch} contradicts the student directory, a {own} model", cfg.student)
    return replace(cfg, arch=own)


def student_side(cfg) -> str:
    """The side of the regions the student reads: student features, or (DCD's released setting, where teacher and
    student see the same image features) the teacher's."""
    return getattr(cfg, "student_features", "student")


def distill_lineage(cfg, regions: Regions, data: TaskData, distillation: dict[str, Any]) -> dict[str, Any]:
    """The student's config.json lineage: its features, the teacher it was distilled from, and how."""
    side = student_side(cfg)
    return {
        "features": side,
        "feature_backbone": regions.metadata.get(f"vlkd.{side}_backbone"),
        "feature_backbone_sha256": regions.metadata.get(f"vlkd.{side}_backbone_sha256"),
        "regions_boxes_sha256": regions.key_for(s.image_index for s in data.train),
        "initialized_from": f"preset:{cfg.student}" if cfg.student in list_presets() else str(cfg.student),
        "use_tags": cfg.use_tags,
        "options": cfg.options,
        "distilled_from": input_record(cfg.teacher, "model"),
        "distillation": distillation,
        "inputs": [input_record(p, "regions") for p in regions.paths]
        + [input_record(cfg.data.annotations, "annotations")],
    }


def check_distillation_features(data: TaskData, regions: Regions, teacher_regions: Regions | None,
                                side: str = "student") -> None:  # fmt: skip
    """Every feature row the run will read is finite: the student's (its `side`) of the training and validation
    images, the teacher's of the training images (in its own regions for the no-adaptation ablation). Exit 3
    otherwise."""
    regions.check_finite(side, (s.image_index for s in data.train + data.val))
    if teacher_regions is None:
        regions.check_finite("teacher", (s.image_index for s in data.train))
    else:
        teacher_regions.check_finite("teacher", (teacher_regions.index_of(s.image_id) for s in data.train))
