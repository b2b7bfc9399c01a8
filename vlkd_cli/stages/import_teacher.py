"""`vlkd import-teacher --format oscar`: an Oscar / VinVL checkpoint directory becomes a vlkd teacher model directory.

Input (as microsoft/Oscar's `save_pretrained` + `tokenizer.save_pretrained` write it): `config.json`,
`pytorch_model.bin` or `model.safetensors`, `vocab.txt` (+ `tokenizer_config.json`, `special_tokens_map.json`,
`added_tokens.json`). `training_args.bin` (a pickled argparse namespace) is never read. A `.bin` is loaded only with
`torch.load(weights_only=True)`: a pickle that holds anything but tensors (code, objects) is refused (exit 3).

Output: a vlkd model directory (`config.json`, `model.safetensors` of kind `model`, tokenizer files) for a caption,
VQA or retrieval teacher that reads `teacher` features of dimension `img_feature_dim - 6` (2048 for VinVL), plus
`import_report.json`: every source key as loaded, ignored (with the reason) or unknown, and every key of our model
that the checkpoint does not provide (missing: left at its fresh initialisation). The key mapping and its facts
live in `vlkd_cli.models.oscar`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vlkd_cli.artifacts.io import build_metadata, file_sha256
from vlkd_cli.artifacts.model_dir import CONFIG_NAME, WEIGHTS_NAME, save_model_dir
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models import oscar
from vlkd_cli.models.factory import create_vl_model, model_from_config
from vlkd_cli.models.oscar_checkpoint import (
    find_weights,
    load_state_dict,
    read_answers,
    read_json_object,
    read_tokenizer,
)
from vlkd_cli.models.tokenizer import save_tokenizer, tokenizer_fingerprint
from vlkd_cli.runtime import seed_everything

FORMATS: tuple[str, ...] = ("oscar",)
TASKS: tuple[str, ...] = ("caption", "vqa", "retrieval")
REPORT_NAME = "import_report.json"
PICKLE_FILES: tuple[str, ...] = ("training_args.bin",)
DEFAULT_FEATURE_BACKBONE = "vinvl"
CAPTION_NOTE = (
    "Oscar captions by predicting a [MASK] appended to the prefix, vlkd predicts the next token from the last prefix "
    "token: fine-tune the imported caption model (vlkd finetune --model DIR, or adapt-teacher) before decoding"
)


@dataclass(frozen=True)
class ImportTeacherConfig:
    """Options of `vlkd import-teacher`.

    Attributes:
        src: The Oscar / VinVL checkpoint directory.
        out: The vlkd model directory to write.
        format: Checkpoint format (oscar).
        task: caption, vqa or retrieval; None = what the checkpoint says.
        answers: VQA answer list: a JSON list (index -> answer) or dict (answer -> index, or index -> answer).
        feature_backbone: Recorded as the model's `feature_backbone` (default vinvl).
        lowercase: Lower-case the text; None = `do_lower_case` of tokenizer_config.json, else whether the
            vocabulary is uncased.
        max_text_len, max_tag_len, max_regions: The sequence layout (Oscar captioning: 40 / 30 / 50).
        overwrite: Replace a non-empty `out`.
        seed: Seeds the initialisation of weights the checkpoint lacks (listed as missing).
    """

    src: Path
    out: Path
    format: str = "oscar"
    task: str | None = None
    answers: Path | None = None
    feature_backbone: str | None = None
    lowercase: bool | None = None
    max_text_len: int = 40
    max_tag_len: int = 30
    max_regions: int = 50
    overwrite: bool = False
    seed: int = 0


@dataclass
class ImportResult:
    """What was written and the key report (the content of `import_report.json`)."""

    out: Path
    task: str
    report: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ reading inputs


def check_paths(cfg: ImportTeacherConfig) -> None:
    """Usage errors (exit 2) before any file is read."""
    if cfg.format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
    if cfg.task is not None and cfg.task not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
    if not cfg.src.is_dir():
        raise UsageError("checkpoint directory does not exist", cfg.src)
    out = cfg.out.resolve()
    if out == cfg.src.resolve() or cfg.src.resolve() in out.parents:
        raise UsageError("--out must lie outside the checkpoint directory", cfg.out)
    if cfg.out.exists() and (not cfg.out.is_dir() or any(cfg.out.iterdir())) and not cfg.overwrite:
        raise UsageError("output exists and is not empty; pass --overwrite to replace it", cfg.out)


# ------------------------------------------------------------------------------------------------------- the run


def resolve_task(
    cfg: ImportTeacherConfig, config: oscar.OscarConfig, state: dict[str, torch.Tensor]
) -> tuple[str, str]:
    """(task, how it was decided): --task wins; else the checkpoint's own head."""
    found, why = oscar.infer_task(config, state)
    if cfg.task is not None:
        note = "" if found in (None, cfg.task) else f" (the checkpoint looks like a {found} model: {why})"
        return cfg.task, f"--task{note}"
    if found is None:
        raise UsageError(f"the checkpoint does not say its task ({why}); pass --task caption|vqa|retrieval", cfg.src)
    return found, why


def vqa_answers(cfg: ImportTeacherConfig, state: dict[str, torch.Tensor]) -> list[str]:
    """The answer list, checked against the classifier's output count when the checkpoint has one."""
    if cfg.answers is None:
        raise UsageError("a VQA teacher needs --answers FILE (a JSON list, or Oscar's ans2label as JSON)")
    output = oscar.classifier_output(state)
    rows = int(state[output].shape[0]) if output is not None else None
    try:
        return oscar.check_answers(read_answers(cfg.answers), rows)
    except ValueError as err:
        raise InputError(str(err), cfg.answers) from err


def _fit_vocabulary(cfg: ImportTeacherConfig, config: oscar.OscarConfig, state: dict[str, torch.Tensor],
                    tokens: int) -> dict[str, Any] | None:  # fmt: skip
    """Refuse a tokenizer larger than the embedding table; cut a table padded beyond the tokenizer (see
    `oscar.trim_vocabulary`). Returns what was cut, for the report."""
    rows = int(config.encoder["vocab_size"])
    if tokens > rows:
        raise InputError(f"the tokenizer has {tokens} tokens, the checkpoint's embedding table {rows} rows", cfg.src)
    if tokens == rows:
        return None
    return {"from_rows": rows, "to_rows": tokens, "keys": oscar.trim_vocabulary(state, tokens)}


def build_model(cfg: ImportTeacherConfig, config: oscar.OscarConfig, task: str, tokenizer, answers: list[str] | None):
    """Our (freshly initialised) task model of the checkpoint's shape, with the Oscar-equivalent options."""
    base = create_vl_model(task=task, encoder_config=config.encoder, tokenizer=tokenizer,
                           region_feature_dim=config.region_feature_dim, answers=answers,
                           max_text_len=cfg.max_text_len, max_tag_len=cfg.max_tag_len,
                           max_regions=cfg.max_regions)  # fmt: skip
    model_config = {**base.config, **oscar.vlkd_model_options(config, task), "encoder_source": "oscar"}
    return model_from_config(model_config)


def map_weights(weights: Path, model, state, config: oscar.OscarConfig, task: str) -> oscar.KeyMapping:
    """Map and load the checkpoint (read from `weights`) into `model`; refuse a checkpoint missing part of the
    transformer body."""
    target = model.state_dict()
    try:
        mapping = oscar.map_state_dict(state, config, task, target)
    except ValueError as err:
        raise InputError(str(err), weights) from err
    body = [k for k in mapping.missing if oscar.is_body_key(k)]
    if body:
        shown = ", ".join(body[:6]) + (f" and {len(body) - 6} more" if len(body) > 6 else "")
        raise InputError(f"no weights for {len(body)} transformer tensors: {shown}", weights)
    merged = {**target, **{k: v.to(target[k].dtype) for k, v in mapping.tensors.items()}}
    model.load_state_dict(merged, strict=True)
    return mapping


def lineage(cfg: ImportTeacherConfig, weights: Path, weights_sha: str, config: oscar.OscarConfig,
            raw_config: dict[str, Any], task_why: str, tokenizer_info: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The config.json keys that say where the teacher came from and which features it reads."""
    inputs = [{"path": str(weights), "kind": "oscar-checkpoint", "sha256": weights_sha},
              {"path": str(cfg.src / "config.json"), "kind": "oscar-config", "sha256": file_sha256(cfg.src / "config.json")},
              {"path": str(cfg.src / "vocab.txt"), "kind": "vocabulary", "sha256": file_sha256(cfg.src / "vocab.txt")}]  # fmt: skip
    if cfg.answers is not None:
        inputs.append({"path": str(cfg.answers), "kind": "answers", "sha256": file_sha256(cfg.answers)})
    return {
        "features": "teacher",
        "feature_backbone": cfg.feature_backbone or DEFAULT_FEATURE_BACKBONE,
        "feature_backbone_sha256": None,
        "regions_boxes_sha256": None,
        "initialized_from": f"oscar:{weights_sha}",
        "use_tags": True,
        "inputs": inputs,
        "imported": {
            "format": cfg.format,
            "source": str(cfg.src),
            "weights": weights.name,
            "task_from": task_why,
            "img_feature_dim": config.img_feature_dim,
            "img_feature_type": config.img_feature_type,
            "use_img_layernorm": config.use_img_layernorm,
            "finetuning_task": config.finetuning_task,
            "num_labels": config.num_labels,
            "classifier": config.classifier,
            "tokenizer": tokenizer_info,
            "oscar_config": {k: v for k, v in raw_config.items() if isinstance(v, (str, int, float, bool, type(None)))},
        },
    }


def make_report(cfg: ImportTeacherConfig, task: str, task_why: str, weights: Path, unread: list[str],
                renames: list[tuple[str, str]], mapping: oscar.KeyMapping,
                trimmed: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The content of `import_report.json`."""
    skipped = {name: "another weights file; not read" for name in unread}
    skipped.update({n: "a pickle (training arguments): never read" for n in PICKLE_FILES if (cfg.src / n).exists()})
    missing_heads = [k for k in mapping.missing if not oscar.is_body_key(k)]
    notes = [CAPTION_NOTE] if task == "caption" else []
    if trimmed:
        notes.append(f"the embedding table has {trimmed['from_rows']} rows for {trimmed['to_rows']} tokens: the rows "
                     f"no token maps to were dropped from {', '.join(trimmed['keys'])}")  # fmt: skip
    if missing_heads:
        notes.append(f"{len(missing_heads)} weights are not in the checkpoint and keep a random initialisation: "
                     "fine-tune before using this model as a teacher")  # fmt: skip
    return {
        "format": cfg.format,
        "source": str(cfg.src),
        "weights_file": weights.name,
        "task": task,
        "task_from": task_why,
        "counts": {
            "loaded": len(mapping.loaded),
            "ignored": len(mapping.ignored),
            "unknown": len(mapping.unknown),
            "missing": len(mapping.missing),
            "renamed": len(renames),
        },
        "loaded": mapping.loaded,
        "ignored": mapping.ignored,
        "unknown": mapping.unknown,
        "missing": mapping.missing,
        "renamed": [list(pair) for pair in renames],
        "files_not_read": skipped,
        "vocabulary_trimmed": trimmed,
        "notes": notes,
    }


def run(cfg: ImportTeacherConfig) -> ImportResult:
    """Import the checkpoint and write the model directory (atomically) with its `import_report.json`."""
    check_paths(cfg)
    raw_config = read_json_object(cfg.src / "config.json") if (cfg.src / "config.json").is_file() else None
    if raw_config is None:
        raise InputError("config.json is missing", cfg.src)
    weights, unread = find_weights(cfg.src)
    state, renames = _normalized(load_state_dict(weights), weights)
    tokenizer, tokenizer_info = read_tokenizer(cfg.src, cfg.lowercase)
    try:
        config = oscar.parse_oscar_config(raw_config, pad_token_id=tokenizer.pad_token_id)
    except ValueError as err:
        raise InputError(str(err), cfg.src / "config.json") from err
    trimmed = _fit_vocabulary(cfg, config, state, len(tokenizer))
    if trimmed:
        config = replace(config, encoder={**config.encoder, "vocab_size": len(tokenizer)})
    task, task_why = resolve_task(cfg, config, state)
    answers = vqa_answers(cfg, state) if task == "vqa" else None
    seed_everything(cfg.seed)
    model = build_model(cfg, config, task, tokenizer, answers)
    mapping = map_weights(weights, model, state, config, task)
    weights_sha = file_sha256(weights)
    model_config = {**model.config, **lineage(cfg, weights, weights_sha, config, raw_config, task_why, tokenizer_info)}
    report = make_report(cfg, task, task_why, weights, unread, renames, mapping, trimmed)
    write_teacher_dir(cfg, model_config, model.state_dict(), tokenizer, report)
    return ImportResult(cfg.out, task, report)


def _normalized(state: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, torch.Tensor], list[tuple[str, str]]]:
    try:
        return oscar.normalize_keys(state)
    except ValueError as err:
        raise InputError(str(err), path) from err


def write_teacher_dir(cfg: ImportTeacherConfig, config: dict[str, Any], state_dict: dict[str, torch.Tensor],
                      tokenizer, report: dict[str, Any]) -> None:  # fmt: skip
    """config.json + model.safetensors + tokenizer files + import_report.json, as one atomic directory."""
    if config.get("tokenizer_fingerprint") != tokenizer_fingerprint(tokenizer):
        raise RuntimeError("tokenizer fingerprint changed while importing")  # a bug, not a user error
    run_config = {k: str(v) if isinstance(v, Path) else v for k, v in cfg.__dict__.items()}
    metadata = build_metadata("model", command="import-teacher", config=run_config, inputs=config["inputs"])
    weights = {k: v.detach().contiguous() for k, v in state_dict.items()}
    with tempfile.TemporaryDirectory(prefix=".vlkd-tokenizer-") as tmp:
        save_tokenizer(tokenizer, Path(tmp))
        extra: dict[str, str | Path] = {p.name: p for p in Path(tmp).iterdir() if p.is_file()}
        extra[REPORT_NAME] = json.dumps(report, indent=2, sort_keys=True) + "\n"
        if {CONFIG_NAME, WEIGHTS_NAME} & set(extra):
            raise RuntimeError("tokenizer files would overwrite the model files")
        save_model_dir(cfg.out, config=config, state_dict=weights, metadata=metadata, extra_files=extra)
