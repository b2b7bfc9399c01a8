"""`vlkd export`: a trained student becomes a clean Hugging Face directory, or a traced inference graph.

`--to hf` writes, into one directory::

    config.json + model.safetensors     a standard `transformers` BertModel (loadable by `AutoModel`)
    tokenizer.json, tokenizer_config.json ...      loadable by `AutoTokenizer`
    vlkd_heads.safetensors              region embedding + task head(s) (+ the dual encoder's image tower), plain
    vlkd_config.json                    shapes, layout, mask type, answers, what was stripped, provenance
    README.md                           the exact recipe and a self-contained PyTorch snippet

The encoder is the cross-encoder's single-stream BERT (`vl.encoder`) or the dual encoder's TEXT tower; the dual
encoder's image tower (a BERT layer stack over [IMG] + region tokens, with no token embeddings, so not a BertModel)
goes into `vlkd_heads.safetensors` with the projections. The config names a standard attention implementation
(`eager`; vlkd's own `vlkd_eager` only differs in returning pre-dropout maps), so a process without vlkd loads it.
The pooler of the HF model (vlkd encoders have none) holds the ITM head's pooler where the task has one (it is the
same dense + tanh on [CLS]; likewise an imported Oscar VQA head's pooler), else zeros, so `from_pretrained`
initialises nothing at random.

`--to torchscript|onnx` traces the inference graph of the task (`export_graph.py`).

Distillation-only parts (the token-NCE projection and queue, anything of the teacher) and training state
(optimizer, RNG) are never exported; every such tensor found in the weights or in the run's checkpoints is listed
in `vlkd_config.json["stripped"]`. `--checkpoint` exports a training checkpoint (`best`, `latest`, `step-N` or a
path) instead of the final `model.safetensors`.

The layout of the weights follows Hugging Face's `BertModel` (`transformers/models/bert/modeling_bert.py`), whose
state-dict names our encoder already uses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vlkd_cli.artifacts.atomic import atomic_dir
from vlkd_cli.artifacts.header import read_header
from vlkd_cli.artifacts.io import input_record, load_tensors
from vlkd_cli.artifacts.model_dir import CONFIG_NAME, WEIGHTS_NAME, read_model_config
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models.dual_encoder import DualEncoder
from vlkd_cli.models.factory import model_from_config
from vlkd_cli.models.task_model import TaskModel
from vlkd_cli.models.tokenizer import load_tokenizer, save_tokenizer
from vlkd_cli.train.checkpoint import CHECKPOINTS, checkpoint_dirs
from vlkd_cli.version import __version__

FORMATS: tuple[str, ...] = ("hf", "torchscript", "onnx")
EXPORT_FORMAT_VERSION = 1
HEADS_NAME = "vlkd_heads.safetensors"
EXPORT_CONFIG_NAME = "vlkd_config.json"
README_NAME = "README.md"
HF_ATTENTION = "eager"  # a standard implementation; "sdpa" gives the same outputs (the README says how to pick it)
GEOMETRY = ("x1/W", "y1/H", "x2/W", "y2/H", "w/W", "h/H")

# Module-level state-dict prefixes of the training modules (finetune: TaskModule.model; distill/DCD: .student).
_STUDENT_PREFIXES = ("model.", "student.")
# Tensors that exist only to train: (pattern on the module-level name, reason).
_STRIP_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^nce\.projection\."), "distillation-only: token-NCE projection"),
    (re.compile(r"^nce\.queue\."), "distillation-only: token-NCE negative queue"),
    (re.compile(r"^nce\."), "distillation-only: token-NCE loss state"),
    (re.compile(r"^_?teacher\."), "distillation-only: teacher"),
    (re.compile(r"(^|\.)queue\."), "distillation-only: queue"),
    (re.compile(r"^optim\."), "training state: optimizer"),
    (re.compile(r"^rng\."), "training state: random generators"),
)


@dataclass(frozen=True)
class ExportConfig:
    """What `vlkd export` does.

    Attributes:
        model: A vlkd model directory (finetune / distill / adapt-teacher output).
        to: hf | torchscript | onnx.
        out: The output directory (replaced atomically).
        checkpoint: None (the final `model.safetensors`), "best", "latest", "step-NNNNNNNN", a step number, or a
            path to a checkpoint directory / `.safetensors` file.
        batch_size: Example batch size the graph is traced at (torchscript / onnx).
    """

    model: Path
    to: str
    out: Path
    checkpoint: str | None = None
    batch_size: int = 1


@dataclass
class Stripped:
    """One tensor (or group of tensors) left out of the export."""

    name: str
    reason: str
    source: str
    shape: list[int] | None = None

    def describe(self) -> str:
        shape = f" {tuple(self.shape)}" if self.shape is not None else ""
        return f"{self.name}{shape} [{self.source}]: {self.reason}"


@dataclass
class ExportSource:
    """A task model loaded for export, with what was left out of it."""

    model: TaskModel
    config: dict[str, Any]
    model_dir: Path
    weights_path: Path
    stripped: list[Stripped] = field(default_factory=list)


@dataclass
class ExportResult:
    out: Path
    to: str
    task: str
    arch: str
    files: list[str]
    stripped: list[Stripped]
    checks: dict[str, float | None]


# ------------------------------------------------------------------------------------------------ loading


def classify_tensor(name: str) -> str | None:
    """The reason a module-level tensor name is stripped (distillation-only or training state), or None."""
    for pattern, reason in _STRIP_RULES:
        if pattern.search(name):
            return reason
    return None


def resolve_checkpoint(model_dir: Path, checkpoint: str) -> Path:
    """The `.safetensors` file a `--checkpoint` value names (see `ExportConfig.checkpoint`).

    Raises:
        UsageError: Nothing of that name exists.
    """
    root = Path(model_dir) / CHECKPOINTS
    if checkpoint == "best":
        path = root / "best" / WEIGHTS_NAME
    elif checkpoint == "latest":
        steps = checkpoint_dirs(model_dir)
        if not steps:
            raise UsageError("the run holds no step checkpoint (--checkpoint latest)", root)
        path = steps[-1] / "checkpoint.safetensors"
    elif checkpoint.isdigit():
        path = root / f"step-{int(checkpoint):08d}" / "checkpoint.safetensors"
    elif re.fullmatch(r"step-\d{8}", checkpoint):
        path = root / checkpoint / "checkpoint.safetensors"
    else:
        given = Path(checkpoint)
        path = given / "checkpoint.safetensors" if given.is_dir() else given
        if given.is_dir() and not path.is_file():
            path = given / WEIGHTS_NAME  # the `best` directory layout
    if not path.is_file():
        raise UsageError(f"no checkpoint {checkpoint!r}", path)
    return path


def _module_state(tensors: dict[str, Tensor], is_step_checkpoint: bool) -> dict[str, Tensor]:
    """A step checkpoint prefixes the training module's state with `model.`; `best/` holds it bare."""
    if not is_step_checkpoint:
        return tensors
    return {k.removeprefix("model."): v for k, v in tensors.items()}


def split_checkpoint(tensors: dict[str, Tensor], source: str) -> tuple[dict[str, Tensor], list[Stripped]]:
    """(student weights, stripped) of a training module's state (`model.*` / `student.*` + NCE, optimizer ...).

    Raises:
        InputError: A tensor that is neither the student's nor a known training-only part.
    """
    student, stripped, unknown = {}, [], []
    for name, value in tensors.items():
        reason = classify_tensor(name)
        if reason is not None:
            stripped.append(Stripped(name, reason, source, list(value.shape)))
        elif name.startswith(_STUDENT_PREFIXES):
            student[name.split(".", 1)[1]] = value
        else:
            unknown.append(name)
    if unknown:
        raise InputError(f"checkpoint holds tensors of no known part: {', '.join(sorted(unknown)[:8])}", source)
    return student, stripped


def _same_shape(own: Tensor, stored: Tensor) -> bool:
    """Equal shapes; a 0-d parameter may be stored as (1,) (as `load_state_dict` accepts)."""
    return tuple(own.shape) == tuple(stored.shape) or (own.ndim == 0 and tuple(stored.shape) == (1,))


def _match_weights(
    model: TaskModel, weights: dict[str, Tensor], path: Path
) -> tuple[dict[str, Tensor], list[Stripped]]:
    """The model's own tensors out of `weights`; known training-only extras are stripped, anything else refused."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    stripped, unknown = [], []
    for name in extra:
        reason = classify_tensor(name)
        if reason is None:
            unknown.append(name)
        else:
            stripped.append(Stripped(name, reason, path.name, list(weights[name].shape)))
    if missing or unknown:
        parts = [
            f"missing {', '.join(missing[:8])}" if missing else "",
            f"unexpected {', '.join(unknown[:8])}" if unknown else "",
        ]
        raise InputError(f"weights do not fit the model config: {'; '.join(p for p in parts if p)}", path)
    bad_shapes = [k for k in own if not _same_shape(own[k], weights[k])]
    if bad_shapes:
        raise InputError(f"weights of the wrong shape: {', '.join(bad_shapes[:8])}", path)
    kept = {k: weights[k] for k in own}
    for name, value in kept.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise InputError(f"tensor '{name}' holds non-finite values", path)
    return kept, stripped


def checkpoint_leftovers(model_dir: Path) -> list[Stripped]:
    """The training-only tensors of the run's checkpoints (read from headers only; nothing is loaded)."""
    root = Path(model_dir) / CHECKPOINTS
    files = [d / "checkpoint.safetensors" for d in checkpoint_dirs(model_dir)] + [root / "best" / WEIGHTS_NAME]
    stripped: list[Stripped] = []
    for path in files:
        if not path.is_file():
            continue
        source = str(path.relative_to(model_dir))
        counts: dict[str, int] = {}
        tensors = read_header(path).tensors
        for raw, info in tensors.items():
            name = raw[len("model.") :] if path.name == "checkpoint.safetensors" and raw.startswith("model.") else raw
            reason = classify_tensor(name)
            if reason is None:
                continue
            if reason.startswith("distillation-only"):
                stripped.append(Stripped(name, reason, source, list(info.shape)))
            else:
                counts[reason] = counts.get(reason, 0) + 1
        stripped += [Stripped(f"{n} tensors", reason, source) for reason, n in counts.items()]
    return stripped


def load_export_source(model_dir: Path, checkpoint: str | None = None) -> ExportSource:
    """Load a vlkd model directory (or one of its checkpoints) as an eval-mode task model.

    Raises:
        UsageError: No such directory / checkpoint.
        InputError: Not a vlkd model directory, or weights that do not fit its config.
    """
    model_dir = Path(model_dir)
    config = read_model_config(model_dir, "model")
    model = model_from_config(config)
    if checkpoint is None:
        path = model_dir / WEIGHTS_NAME
        if not path.is_file():
            raise InputError(f"{WEIGHTS_NAME} is missing", model_dir)
        weights, _ = load_tensors(path, "model")
        weights, stripped = _match_weights(model, weights, path)
        stripped += checkpoint_leftovers(model_dir)
    else:
        path = resolve_checkpoint(model_dir, checkpoint)
        tensors, _ = load_tensors(path, "checkpoint", check_finite=False)
        state = _module_state(tensors, path.name == "checkpoint.safetensors")
        where = str(path.relative_to(model_dir)) if path.is_relative_to(model_dir) else str(path)
        student, stripped = split_checkpoint(state, where)
        weights, more = _match_weights(model, student, path)
        stripped += more
    model.load_state_dict(weights, strict=True)
    model.eval()
    return ExportSource(model, config, model_dir, path, stripped)


# ------------------------------------------------------------------------------------------------ splitting


def encoder_prefix(model: TaskModel) -> str:
    """State-dict prefix of the BERT encoder that becomes the AutoModel (the dual encoder's text tower)."""
    return "text_encoder." if isinstance(model, DualEncoder) else "vl.encoder."


def split_weights(model: TaskModel) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(BertModel state dict with a pooler, heads state dict) of a task model.

    Heads keep their vlkd names without the `vl.` prefix: `region_embedding.*`, `lm_head.*`, `vqa_head.*`,
    `itm_head.*`; dual: `region_embedding.*`, `image_token`, `image_encoder.layer.*`, `image_projection.weight`,
    `text_projection.weight`, `logit_scale`.
    """
    prefix = encoder_prefix(model)
    encoder, heads = {}, {}
    for name, value in model.state_dict().items():
        value = value.detach().to("cpu", copy=True).contiguous()
        if name.startswith(prefix):
            encoder[name[len(prefix) :]] = value
        else:
            heads[name.removeprefix("vl.")] = value
    hidden = int(encoder["embeddings.word_embeddings.weight"].shape[1])
    pooler = pooler_source(heads)
    if pooler in _POOLERS:
        encoder["pooler.dense.weight"] = heads[f"{pooler}.weight"].clone()
        encoder["pooler.dense.bias"] = heads[f"{pooler}.bias"].clone()
    else:
        encoder["pooler.dense.weight"] = torch.zeros(hidden, hidden)
        encoder["pooler.dense.bias"] = torch.zeros(hidden)
    return encoder, heads


# Head modules that are exactly BERT's pooler (dense + tanh on [CLS]): ITM, and Oscar's pooled VQA head (imported).
_POOLERS = ("itm_head.pooler", "vqa_head.pooler")


def pooler_source(heads: dict[str, Tensor]) -> str:
    """Which head's weights the exported BertModel's pooler holds (or zeros when no head has a BERT pooler)."""
    found = [name for name in _POOLERS if f"{name}.weight" in heads]
    return found[0] if found else "zeros (not trained: use last_hidden_state)"


def region_layer_norm_eps(model: TaskModel) -> float | None:
    """The epsilon of the region embedding's LayerNorm, or None when the model has none (imported Oscar models)."""
    embedding = model.region_embedding if isinstance(model, DualEncoder) else model.vl.region_embedding
    norm = embedding.layer_norm
    return float(norm.eps) if isinstance(norm, torch.nn.LayerNorm) else None


def hf_config(encoder_config: dict[str, Any]) -> dict[str, Any]:
    """The `config.json` of the exported BertModel: BertConfig's fields, a standard attention implementation."""
    from transformers import BertConfig

    kwargs = {k: v for k, v in encoder_config.items() if k not in ("model_type", "_attn_implementation")}
    config = BertConfig(**kwargs).to_dict()
    config.pop("_attn_implementation_internal", None)
    config.update(architectures=["BertModel"], model_type="bert", attn_implementation=HF_ATTENTION, dtype="float32")
    return config


# ------------------------------------------------------------------------------------------------ description


def export_description(source: ExportSource, heads: dict[str, Tensor], to: str) -> dict[str, Any]:
    """The `vlkd_config.json` of an export: everything needed to build inputs and run the heads."""
    config, model = source.config, source.model
    layout = dict(config["layout"])
    encoder = dict(config["encoder"])
    description: dict[str, Any] = {
        "format": "vlkd-export",
        "format_version": EXPORT_FORMAT_VERSION,
        "exported_with": f"vlkd {__version__}",
        "to": to,
        "task": config["task"],
        "arch": config.get("arch", "cross"),
        "mask_type": model.mask_type,
        "layout": layout,
        "num_text_tokens": layout["max_text_len"] + layout["max_tag_len"],
        "num_tokens": layout["max_text_len"] + layout["max_tag_len"] + layout["max_regions"],
        "region_feature_dim": int(config["region_feature_dim"]),
        "geometry": list(GEOMETRY),
        "use_tags": bool(config.get("use_tags", True)) and layout["max_tag_len"] > 0,
        "hidden_size": int(encoder["hidden_size"]),
        "layer_norm_eps": float(encoder.get("layer_norm_eps", 1e-12)),
        "region_layer_norm_eps": region_layer_norm_eps(model),
        "special_token_ids": dict(config["special_token_ids"]),
        "tokenizer_fingerprint": config.get("tokenizer_fingerprint"),
        "heads": {name: list(value.shape) for name, value in sorted(heads.items())},
        "pooler": pooler_source(heads),
        "stripped": [s.describe() for s in source.stripped],
        "source": _provenance(source),
    }
    if config["task"] == "vqa":
        description.update(num_answers=int(config["num_answers"]), answers=config.get("answers"),
                           vqa_head=dict(config.get("vqa_head") or {"style": "vlkd"}))  # fmt: skip
    if "lm_head.bias" in heads:
        description["lm_head_tied_to"] = "embeddings.word_embeddings.weight"
    if isinstance(model, DualEncoder):
        image = {k: v for k, v in config["image_encoder"].items() if k != "model_type"}
        description.update(image_encoder=image, projection_dim=int(config["projection_dim"]))
        description["image_layout"] = {"tokens": 1 + layout["max_regions"], "first": "[IMG] token (image_token)"}
    return description


def _provenance(source: ExportSource) -> dict[str, Any]:
    config = source.config
    keys = ("features", "feature_backbone", "feature_backbone_sha256", "regions_boxes_sha256", "initialized_from",
            "adapted_to_boxes_sha256", "distilled_from")  # fmt: skip
    record = input_record(source.weights_path, "checkpoint" if source.weights_path.name != WEIGHTS_NAME else "model")
    provenance = {"model_dir": str(source.model_dir), "weights": str(source.weights_path), "sha256": record["sha256"]}
    provenance.update({k: config[k] for k in keys if config.get(k) is not None})
    if config.get("distillation"):
        provenance["distillation_method"] = config["distillation"].get("method")
    return provenance


# ------------------------------------------------------------------------------------------------ writing


def _save_plain(path: Path, tensors: dict[str, Tensor]) -> None:
    """Plain safetensors (only `format=pt` metadata): what any `safetensors` / `transformers` reader expects."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def write_tokenizer(model_dir: Path, out: Path) -> None:
    """The model's tokenizer files, re-saved by `transformers` so `AutoTokenizer` loads them."""
    save_tokenizer(load_tokenizer(model_dir), out)


def write_hf_export(source: ExportSource, out: Path) -> tuple[list[str], dict[str, Any]]:
    """Fill `out` (an existing empty directory) with the HF export; returns (file names, description)."""
    from vlkd_cli.stages.export_readme import hf_readme

    encoder, heads = split_weights(source.model)
    _write_json(out / CONFIG_NAME, hf_config(source.config["encoder"]))
    _save_plain(out / WEIGHTS_NAME, encoder)
    _save_plain(out / HEADS_NAME, heads)
    write_tokenizer(source.model_dir, out)
    description = export_description(source, heads, "hf")
    _write_json(out / EXPORT_CONFIG_NAME, description)
    (out / README_NAME).write_text(hf_readme(description), encoding="utf-8")
    return sorted(p.name for p in out.iterdir()), description


def run(cfg: ExportConfig) -> ExportResult:
    """Export a model directory; the output directory appears complete or not at all.

    Raises:
        UsageError: Unknown format, onnx without the `onnx` package, a bad batch size, no such checkpoint.
        InputError: The model directory is not a loadable vlkd model.
    """
    if cfg.to not in FORMATS:
        raise UsageError(f"--to must be one of {', '.join(FORMATS)}, got {cfg.to!r}")
    if cfg.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    if cfg.to == "onnx":
        from vlkd_cli.stages.export_graph import require_onnx

        require_onnx()
    if Path(cfg.out).resolve() == Path(cfg.model).resolve():
        raise UsageError("--out must not be the model directory itself", cfg.out)
    source = load_export_source(cfg.model, cfg.checkpoint)
    checks: dict[str, float | None] = {}
    with torch.no_grad(), atomic_dir(Path(cfg.out)) as tmp:
        if cfg.to == "hf":
            files, _ = write_hf_export(source, tmp)
        else:
            from vlkd_cli.stages.export_graph import write_graph_export

            files, checks = write_graph_export(source, tmp, fmt=cfg.to, batch_size=cfg.batch_size)
    return ExportResult(Path(cfg.out), cfg.to, source.config["task"], source.config.get("arch", "cross"), files,
                        source.stripped, checks)  # fmt: skip
