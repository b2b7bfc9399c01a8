"""Model directories (HF-like): `config.json` + `model.safetensors` (+ tokenizer files), written atomically.

`config.json` holds `vlkd_kind`, `vlkd_schema_version` and everything needed to rebuild the module, so a
directory loads in vlkd without the run that made it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vlkd_cli.artifacts.atomic import atomic_dir
from vlkd_cli.artifacts.header import Header
from vlkd_cli.artifacts.io import load_tensors, save_artifact
from vlkd_cli.artifacts.schema import SCHEMA_VERSIONS, check_kind_and_version
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.jsonfile import read_json

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_model_dir(
    path: Path,
    *,
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    metadata: dict[str, str],
    extra_files: Mapping[str, str | Path] | None = None,
) -> None:
    """Write config + weights (+ extra text files or copied files) as one atomic directory."""
    kind = metadata["vlkd.kind"]
    full_config = {"vlkd_kind": kind, "vlkd_schema_version": SCHEMA_VERSIONS[kind], **config}
    with atomic_dir(Path(path)) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps(full_config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        save_artifact(tmp / WEIGHTS_NAME, {k: v.contiguous() for k, v in state_dict.items()}, metadata)
        for name, content in (extra_files or {}).items():
            if isinstance(content, Path):
                shutil.copy2(content, tmp / name)
            else:
                (tmp / name).write_text(content, encoding="utf-8")


def read_model_config(path: Path, kind: str) -> dict[str, Any]:
    """Read and check `config.json` of a `kind` directory (exit 2 if missing, 3 if wrong kind or newer)."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"no such {kind} directory", path)
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise InputError(f"not a vlkd {kind} directory: {CONFIG_NAME} is missing", path)
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise InputError("config.json must hold a JSON object", config_path)
    check_kind_and_version(config.get("vlkd_kind"), str(config.get("vlkd_schema_version", "")), kind, config_path)
    return config


def load_model_dir(path: Path, kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor], Header]:
    """Config, weights and the weights' header of a `kind` directory."""
    config = read_model_config(path, kind)
    weights = Path(path) / WEIGHTS_NAME
    if not weights.is_file():
        raise InputError(f"{WEIGHTS_NAME} is missing", path)
    tensors, header = load_tensors(weights, kind)
    return config, tensors, header
