"""Building the BERT-family encoder: from a preset, from a local HF directory, or from a saved config dict.

Every encoder is a `transformers.BertModel` without its pooler (unused parameters break DDP), running the
`vlkd_eager` attention so attention maps come back pre-dropout. Supported HF model types: `bert` (BERT, MiniLM,
all-MiniLM-L6-v2 ...). A model's saved config holds the encoder config as a plain dict (`encoder_config_dict`), so a
model rebuilds without the directory it was first loaded from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn
from transformers import BertConfig, BertModel

from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models.attention import register_attention
from vlkd_cli.models.presets import get_preset

SUPPORTED_MODEL_TYPES: tuple[str, ...] = ("bert",)
# Keys of `BertConfig.to_dict()` that describe where a config came from, not the network.
_PROVENANCE_KEYS = ("_name_or_path", "transformers_version", "architectures", "id2label", "label2id", "dtype")


def preset_encoder_config(
    name: str, *, vocab_size: int, pad_token_id: int = 0, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The encoder config dict of a preset for a vocabulary of `vocab_size` tokens (see `presets.py`)."""
    config = get_preset(name)
    config.update(vocab_size=int(vocab_size), pad_token_id=int(pad_token_id), model_type="bert")
    config.update(overrides or {})
    return config


def hf_encoder_config(directory: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The encoder config dict of a local HF model directory (its `config.json`), checked for support.

    Raises:
        UsageError: The directory does not exist.
        InputError: No readable `config.json`, or an unsupported `model_type`.
    """
    path = Path(directory)
    if not path.is_dir():
        raise UsageError("model directory does not exist", path)
    try:
        raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"no readable config.json: {err}", path) from err
    if raw.get("model_type") not in SUPPORTED_MODEL_TYPES:
        raise InputError(
            f"unsupported encoder model_type {raw.get('model_type')!r}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}",
            path,
        )
    config = BertConfig.from_dict(raw).to_dict()
    config.update(overrides or {})
    return _clean(config)


def encoder_config_dict(encoder: BertModel) -> dict[str, Any]:
    """The JSON-able config of a built encoder, without provenance (paths, versions)."""
    return _clean(encoder.config.to_dict())


def _clean(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _PROVENANCE_KEYS}


def build_encoder(config: dict[str, Any]) -> BertModel:
    """A randomly initialised encoder (BERT init) from a config dict."""
    bert_config = _bert_config(config)
    encoder = BertModel(bert_config, add_pooling_layer=False)
    _check_attention(encoder)
    return encoder


def load_hf_encoder(directory: str | Path, overrides: dict[str, Any] | None = None) -> BertModel:
    """The pretrained encoder of a local HF directory (`local_files_only`; never reaches a hub).

    Raises:
        UsageError / InputError: see `hf_encoder_config`; InputError also when the weights do not load.
    """
    config = _bert_config(hf_encoder_config(directory, overrides))
    try:
        encoder = BertModel.from_pretrained(
            str(directory), config=config, local_files_only=True, attn_implementation=register_attention()
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise InputError(f"cannot load encoder weights: {err}", directory) from err
    encoder.pooler = None  # loaded (so no unexpected-key report) then dropped: unused parameters break DDP
    _check_attention(encoder)
    return encoder


def _bert_config(config: dict[str, Any]) -> BertConfig:
    bert_config = BertConfig(**{k: v for k, v in config.items() if k != "model_type"})
    bert_config._attn_implementation = register_attention()
    return bert_config


def _check_attention(encoder: BertModel) -> None:
    if encoder.config._attn_implementation != register_attention():
        raise RuntimeError(f"encoder runs {encoder.config._attn_implementation!r} attention, not vlkd_eager")


def encoder_layers(encoder: BertModel) -> nn.ModuleList:
    """The transformer layer stack of an encoder."""
    return encoder.encoder.layer
