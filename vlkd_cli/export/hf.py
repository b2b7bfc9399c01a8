"""`vlkd export --to hf`: the encoder as a standard `transformers` BertModel directory, the heads beside it, and the
description (`vlkd_config.json`) and README every export format shares. The layout of the weights follows Hugging
Face's `BertModel` (`transformers/models/bert/modeling_bert.py`), whose state-dict names our encoder already uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vlkd_cli.artifacts.io import input_record
from vlkd_cli.artifacts.model_dir import CONFIG_NAME, WEIGHTS_NAME
from vlkd_cli.export.source import ExportSource
from vlkd_cli.models.dual_encoder import DualEncoder
from vlkd_cli.models.task_model import TaskModel
from vlkd_cli.models.tokenizer import load_tokenizer, save_tokenizer
from vlkd_cli.version import __version__

EXPORT_FORMAT_VERSION = 1
HEADS_NAME = "vlkd_heads.safetensors"
EXPORT_CONFIG_NAME = "vlkd_config.json"
README_NAME = "README.md"
HF_ATTENTION = "eager"  # a standard implementation; "sdpa" gives the same outputs (the README says how to pick it)
GEOMETRY = ("x1/W", "y1/H", "x2/W", "y2/H", "w/W", "h/H")


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
    from vlkd_cli.export.readme import hf_readme

    encoder, heads = split_weights(source.model)
    _write_json(out / CONFIG_NAME, hf_config(source.config["encoder"]))
    _save_plain(out / WEIGHTS_NAME, encoder)
    _save_plain(out / HEADS_NAME, heads)
    write_tokenizer(source.model_dir, out)
    description = export_description(source, heads, "hf")
    _write_json(out / EXPORT_CONFIG_NAME, description)
    (out / README_NAME).write_text(hf_readme(description), encoding="utf-8")
    return sorted(p.name for p in out.iterdir()), description


