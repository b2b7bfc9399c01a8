"""Creating task models, and rebuilding them from their JSON config.

`create_vl_model(...)` builds a model from a preset, a local HF directory or an encoder config dict. Every model
carries `model.config`, a self-contained JSON-able dict (the encoder config as a dict, never a path), so::

    model = model_from_config(json.loads(config_json))
    model.load_state_dict(safetensors.torch.load_file("model.safetensors"))

rebuilds it exactly. Config keys: `config_version`, `task`, `arch`, `encoder` (BertConfig dict), `image_encoder`
(dual only), `encoder_source` (provenance, informative), `region_feature_dim`, `layout` {max_text_len, max_tag_len,
max_regions}, `special_token_ids` {pad, unk, cls, sep, mask}, `tokenizer_fingerprint`, `num_answers`, `answers`,
`label_smoothing`, `mlm_probability`, `itm_negatives`, `projection_dim`.

Optional keys (absent = the default module; written by `vlkd import-teacher` for Oscar/VinVL checkpoints):
`region_layer_norm` (bool, default true: LayerNorm after the region projection), `region_layer_norm_eps` (default:
the encoder's `layer_norm_eps`), `vqa_head` (see `vqa_head.build_vqa_head`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from transformers import BertConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models.dual_encoder import DualEncoder
from vlkd_cli.models.encoders import (
    build_encoder,
    encoder_config_dict,
    hf_encoder_config,
    load_hf_encoder,
    preset_encoder_config,
)
from vlkd_cli.models.region_embedding import RegionEmbedding
from vlkd_cli.models.task_model import TaskModel
from vlkd_cli.models.task_models import CaptionModel, ITMModel, PretrainModel, VQAModel
from vlkd_cli.models.tokenizer import load_tokenizer, special_token_ids, tokenizer_fingerprint
from vlkd_cli.models.vl_transformer import VLTransformer
from vlkd_cli.models.vqa_head import check_vqa_head_spec

CONFIG_VERSION = 1
TASKS: tuple[str, ...] = ("caption", "vqa", "retrieval", "pretrain")
ARCHS: tuple[str, ...] = ("cross", "dual")
_CROSS_MODELS = {"caption": CaptionModel, "vqa": VQAModel, "retrieval": ITMModel, "pretrain": PretrainModel}


def list_tasks() -> list[str]:
    return list(TASKS)


def is_model_config(config: Mapping[str, Any]) -> bool:
    """Whether a parsed `config.json` is a vlkd model config (else e.g. an HF model directory's config)."""
    return "config_version" in config and "task" in config and "layout" in config


def _check_task(task: str, arch: str) -> None:
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if arch not in ARCHS:
        raise UsageError(f"unknown arch {arch!r}; known: {', '.join(ARCHS)}")
    if arch == "dual" and task != "retrieval":
        raise UsageError(f"--arch dual is for retrieval only, not {task!r}")


def _encoder_source(
    preset: str | None,
    hf_dir: Path | None,
    encoder_config: Mapping[str, Any] | None,
    tokenizer: PreTrainedTokenizerFast | None,
    overrides: Mapping[str, Any] | None,
    hf_name: str | None = None,
) -> tuple[dict[str, Any], str, PreTrainedTokenizerFast]:
    """(encoder config dict, provenance string, tokenizer) from exactly one source."""
    if sum(x is not None for x in (preset, hf_dir, encoder_config)) != 1:
        raise UsageError("give exactly one of a preset, an HF model directory or an encoder config")
    if tokenizer is None and hf_dir is not None:
        tokenizer = load_tokenizer(hf_dir)
    if tokenizer is None:
        raise UsageError("a preset or encoder config needs a tokenizer (vocabulary size and special tokens)")
    if preset is not None:
        config = preset_encoder_config(preset, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                       overrides=overrides)  # fmt: skip
        return config, f"preset:{preset}", tokenizer
    if hf_dir is not None:
        config = hf_encoder_config(hf_dir, overrides)
        return config, f"hf:{hf_name or Path(hf_dir).name}", tokenizer
    config = {**dict(encoder_config), **(overrides or {})}
    return config, "config", tokenizer


def _layout(max_text_len: int, max_tag_len: int, max_regions: int, encoder: Mapping[str, Any]) -> dict[str, int]:
    if max_text_len < 2 or max_tag_len < 0 or max_regions < 0:
        raise UsageError("need max_text_len >= 2, max_tag_len >= 0 and max_regions >= 0")
    positions = int(encoder.get("max_position_embeddings", 512))
    if max_text_len + max_tag_len > positions:
        raise UsageError(f"max_text_len + max_tag_len = {max_text_len + max_tag_len} exceeds the encoder's {positions}")
    return {"max_text_len": max_text_len, "max_tag_len": max_tag_len, "max_regions": max_regions}


def create_vl_model(
    *,
    task: str,
    arch: str = "cross",
    preset: str | None = None,
    hf_dir: str | Path | None = None,
    hf_name: str | None = None,
    encoder_config: Mapping[str, Any] | None = None,
    tokenizer: PreTrainedTokenizerFast | None = None,
    region_feature_dim: int,
    num_answers: int | None = None,
    answers: Sequence[str] | None = None,
    max_text_len: int = 40,
    max_tag_len: int = 30,
    max_regions: int = 50,
    label_smoothing: float = 0.0,
    mlm_probability: float = 0.15,
    itm_negatives: int = 0,
    projection_dim: int = 256,
    encoder_overrides: Mapping[str, Any] | None = None,
) -> TaskModel:
    """Build a task model.

    Args:
        task: caption | vqa | retrieval | pretrain.
        arch: cross (single-stream VLTransformer) | dual (DualEncoder; retrieval only).
        preset: An encoder preset (`list_presets()`); random init.
        hf_dir: A local HF BERT-family directory (weights + tokenizer), e.g. all-MiniLM-L6-v2.
        hf_name: How `hf_dir` is recorded in `encoder_source` (a hub id; default: the folder's name).
        encoder_config: An encoder config dict (e.g. another model's `config["encoder"]`); random init.
        tokenizer: The tokenizer (required with a preset or encoder config; default for hf_dir: the dir's own).
            A larger tokenizer than an HF encoder's vocabulary grows the embedding table.
        region_feature_dim: D of the region features (without the 6 geometry values).
        num_answers: VQA answer count (or give `answers`).
        answers: VQA answer vocabulary, stored in the config (index -> answer).
        max_text_len, max_tag_len, max_regions: The shared sequence layout (see `vlkd_cli.structures.vl_batch`);
            Oscar uses 40/30/50.
        label_smoothing: Caption cross-entropy smoothing (Oscar: 0.1).
        mlm_probability: Pre-training mask rate.
        itm_negatives: Retrieval cross-encoder objective: 0 = Oscar's binary ITM (one negative per pair); K > 0 =
            ViLT/METER's ranking objective (softmax over the caption and K captions of other images).
        projection_dim: Dual encoder embedding size.
        encoder_overrides: BertConfig fields to change (e.g. {"hidden_dropout_prob": 0.3}).

    Raises:
        UsageError: Bad task/arch/preset/source combination or layout.
        InputError: An HF directory that cannot be used.
    """
    _check_task(task, arch)
    encoder, source, tokenizer = _encoder_source(
        preset, Path(hf_dir) if hf_dir is not None else None, encoder_config, tokenizer, encoder_overrides, hf_name
    )
    if task == "vqa":
        num_answers = len(answers) if answers is not None else num_answers
        if not num_answers:
            raise UsageError("the vqa task needs num_answers or an answer vocabulary")
    encoder["vocab_size"] = max(int(encoder["vocab_size"]), len(tokenizer))
    config = {
        "config_version": CONFIG_VERSION,
        "task": task,
        "arch": arch,
        "encoder": encoder,
        "encoder_source": source,
        "region_feature_dim": int(region_feature_dim),
        "layout": _layout(max_text_len, max_tag_len, max_regions, encoder),
        "special_token_ids": special_token_ids(tokenizer),
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
        "num_answers": int(num_answers) if task == "vqa" else None,
        "answers": list(answers) if answers is not None else None,
        "label_smoothing": float(label_smoothing),
        "mlm_probability": float(mlm_probability),
        "itm_negatives": int(itm_negatives),
    }
    if arch == "dual":
        config["image_encoder"] = {k: v for k, v in encoder.items() if k not in ("vocab_size", "pad_token_id")}
        config["projection_dim"] = int(projection_dim)
    model = model_from_config(config)
    if hf_dir is not None:
        _load_pretrained_encoder(model, Path(hf_dir), encoder_overrides)
    return model


def _load_pretrained_encoder(model: TaskModel, hf_dir: Path, overrides: Mapping[str, Any] | None) -> None:
    """Copy the pretrained encoder weights into the (randomly initialised) model's encoder."""
    pretrained = load_hf_encoder(hf_dir, dict(overrides or {}))
    target = model.text_encoder if isinstance(model, DualEncoder) else model.vl.encoder
    vocab_size = target.config.vocab_size
    if pretrained.config.vocab_size < vocab_size:
        pretrained.resize_token_embeddings(vocab_size)
    target.load_state_dict(pretrained.state_dict())


def model_from_config(config: Mapping[str, Any]) -> TaskModel:
    """Rebuild a (randomly initialised) task model from its config; then `load_state_dict` its weights.

    Raises:
        InputError: The config is not a vlkd model config, or is of a newer version.
    """
    config = copy.deepcopy(dict(config))
    missing = [k for k in ("config_version", "task", "arch", "encoder", "region_feature_dim", "layout",
                           "special_token_ids") if k not in config]  # fmt: skip
    if missing:
        raise InputError(f"not a vlkd model config: missing {', '.join(missing)}")
    if int(config["config_version"]) > CONFIG_VERSION:
        raise InputError(
            f"model config version {config['config_version']} is newer than {CONFIG_VERSION}; upgrade vlkd"
        )
    try:
        _check_task(config["task"], config["arch"])
    except UsageError as err:
        raise InputError(f"invalid model config: {err}") from err
    try:
        check_vqa_head_spec(config.get("vqa_head"))
    except ValueError as err:
        raise InputError(f"invalid model config: {err}") from err
    encoder = build_encoder(config["encoder"])
    if config["arch"] == "dual":
        return DualEncoder(encoder, BertConfig(**config["image_encoder"]), config)
    vl = VLTransformer(encoder, region_feature_dim=int(config["region_feature_dim"]))
    _apply_region_options(vl, config)
    return _CROSS_MODELS[config["task"]](vl, config)


def _apply_region_options(vl: VLTransformer, config: Mapping[str, Any]) -> None:
    """Rebuild the region embedding when the config asks for no LayerNorm or another epsilon (imported models)."""
    enabled = bool(config.get("region_layer_norm", True))
    eps = config.get("region_layer_norm_eps")
    if enabled and eps is None:
        return  # the default module VLTransformer built
    encoder_config = vl.encoder.config
    vl.region_embedding = RegionEmbedding(
        int(config["region_feature_dim"]),
        encoder_config.hidden_size,
        dropout=encoder_config.hidden_dropout_prob,
        layer_norm_eps=float(eps if eps is not None else encoder_config.layer_norm_eps),
        initializer_range=encoder_config.initializer_range,
        layer_norm=enabled,
    )


def load_matching_weights(model: torch.nn.Module, state_dict: Mapping[str, Tensor]) -> list[str]:
    """Copy the entries of `state_dict` whose name and shape match `model`'s (e.g. a pre-trained body and LM head
    into a caption model); returns the names copied."""
    own = model.state_dict()
    matching = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return sorted(matching)


def encoder_config_of(model: TaskModel) -> dict[str, Any]:
    """The encoder config dict of a built model (e.g. to create another task's model of the same shape)."""
    encoder = model.text_encoder if isinstance(model, DualEncoder) else model.vl.encoder
    return encoder_config_dict(encoder)
