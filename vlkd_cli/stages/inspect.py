"""`vlkd inspect`: describe an artifact (kind, version, lineage, tensor shapes) from its header alone.

No tensor is loaded and torch is not imported; the header is fully validated (length, JSON, dtype x shape
against offsets and the file size), so a truncated or lying file is an exit-3 error.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlkd_cli.artifacts.header import Header, read_header
from vlkd_cli.artifacts.shards import resolve_shards
from vlkd_cli.errors import InputError, UsageError

# Metadata shown as parsed JSON rather than as a string.
JSON_KEYS = ("vlkd.config", "vlkd.inputs", "vlkd.categories")


def describe(path: Path) -> list[dict]:
    """One description per safetensors file behind `path` (a file, a shard set, or a model/eval directory)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise InputError("directory holds no .safetensors artifact", path)
        return [describe_file(f, directory=path) for f in files]
    if path.suffix != ".safetensors" and path.exists():
        raise InputError("not a safetensors artifact (expected a .safetensors file or an artifact directory)", path)
    try:
        files = resolve_shards(path)
    except UsageError:
        raise UsageError("no such file or directory", path) from None
    return [describe_file(f) for f in files]


def describe_file(path: Path, directory: Path | None = None) -> dict:
    """Header facts of one file as plain data."""
    header = read_header(path)
    metadata = dict(header.metadata)
    parsed = {key: _parse_json(metadata.pop(key)) for key in JSON_KEYS if key in metadata}
    description = {
        "path": str(path),
        "kind": metadata.pop("vlkd.kind", None),
        "schema_version": metadata.pop("vlkd.schema_version", None),
        "vlkd_version": metadata.pop("vlkd.version", None),
        "command": metadata.pop("vlkd.command", None),
        "created": metadata.pop("vlkd.created", None),
        "inputs": parsed.pop("vlkd.inputs", []),
        "config": parsed.pop("vlkd.config", {}),
        "metadata": {**metadata, **parsed},
        "tensors": _tensors(header),
        "bytes": path.stat().st_size,
    }
    if directory is not None and (directory / "config.json").is_file():
        description["directory_config"] = _parse_json((directory / "config.json").read_text(encoding="utf-8"))
    return description


def _tensors(header: Header) -> list[dict]:
    return [
        {"name": name, "dtype": info.dtype, "shape": list(info.shape)}
        for name, info in sorted(header.tensors.items(), key=lambda item: item[1].begin)
    ]


def _parse_json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
