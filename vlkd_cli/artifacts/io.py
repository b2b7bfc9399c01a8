"""Save and open vlkd artifacts: safetensors with `vlkd.*` metadata, checked on write and on read.

Every file carries `format=pt`, `vlkd.kind`, `vlkd.schema_version`, `vlkd.version`, `vlkd.command`,
`vlkd.created`, `vlkd.config` (resolved config, JSON), `vlkd.inputs` (lineage, JSON list of
{path, kind, sha256}) and `vlkd.content_sha256` (names, dtypes, shapes and bytes of all tensors).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlkd_cli.artifacts.header import Header, read_header
from vlkd_cli.artifacts.schema import SCHEMA_VERSIONS, SPECS, check_kind_and_version, check_shapes
from vlkd_cli.artifacts.writer import PendingTensor, content_sha256, pending_from_array, write_safetensors
from vlkd_cli.errors import InputError
from vlkd_cli.version import __version__

FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


def build_metadata(
    kind: str,
    *,
    command: str,
    config: Mapping[str, Any],
    inputs: Iterable[Mapping[str, str]] = (),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The flat str→str metadata every vlkd artifact carries."""
    metadata = {
        "format": "pt",
        "vlkd.kind": kind,
        "vlkd.schema_version": str(SCHEMA_VERSIONS[kind]),
        "vlkd.version": __version__,
        "vlkd.command": command,
        "vlkd.created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "vlkd.config": json.dumps(config, sort_keys=True, default=str),
        "vlkd.inputs": json.dumps(list(inputs)),
    }
    metadata.update(extra or {})
    return metadata


def tensor_to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A contiguous CPU numpy array of the tensor. bfloat16 has no numpy dtype and is refused (cast to float32)."""
    if tensor.dtype == torch.bfloat16:
        raise TypeError("bfloat16 tensors are not supported in vlkd artifacts; cast to float32")
    return tensor.detach().cpu().contiguous().numpy()


def write_artifact(path: Path, tensors: list[PendingTensor], metadata: dict[str, str]) -> str:
    """Check shapes against the kind's spec, stamp the content hash, write atomically; return the content hash."""
    kind = metadata["vlkd.kind"]
    check_shapes(kind, {t.name: (t.dtype, t.shape) for t in tensors}, path)
    metadata = {**metadata, "vlkd.content_sha256": content_sha256(tensors)}
    write_safetensors(Path(path), tensors, metadata)
    return metadata["vlkd.content_sha256"]


def save_artifact(path: Path, tensors: Mapping[str, torch.Tensor | np.ndarray], metadata: dict[str, str]) -> str:
    """Save in-memory tensors (model weights, eval scores...) as an artifact; float values must be finite."""
    pending = []
    for name, value in tensors.items():
        array = tensor_to_numpy(value) if isinstance(value, torch.Tensor) else np.asarray(value)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InputError(f"refusing to write non-finite values in tensor '{name}'", path)
        pending.append(pending_from_array(name, array))
    return write_artifact(path, pending, metadata)


def open_artifact(path: Path, kind: str) -> Header:
    """Read and validate the header of a `kind` artifact (kind, schema version, tensor spec). No tensor is loaded."""
    header = read_header(Path(path))
    check_kind_and_version(header.get("vlkd.kind"), header.get("vlkd.schema_version"), kind, path)
    check_shapes(kind, {name: (t.dtype, t.shape) for name, t in header.tensors.items()}, path)
    return header


def load_tensors(path: Path, kind: str, *, check_finite: bool = True) -> tuple[dict[str, torch.Tensor], Header]:
    """Load every tensor of a (small) artifact, e.g. model weights; non-finite floats are exit 3."""
    from safetensors.torch import load_file

    header = open_artifact(path, kind)
    tensors = load_file(str(path))
    if check_finite:
        for name, tensor in tensors.items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise InputError(f"tensor '{name}' holds non-finite values", path)
    return tensors, header


def input_record(path: Path, kind: str | None = None) -> dict[str, str]:
    """A lineage record `{path, kind, sha256}`. vlkd artifacts give their stored content hash (never re-read);
    other files are hashed; a model/detector directory is identified by its `model.safetensors`."""
    path = Path(path)
    weights = path / "model.safetensors" if path.is_dir() else path
    if weights.suffix == ".safetensors" and weights.is_file():
        header = read_header(weights)
        if header.get("vlkd.content_sha256"):
            return {"path": str(path), "kind": kind or header.get("vlkd.kind", ""), "sha256": header.get("vlkd.content_sha256")}
    return {"path": str(path), "kind": kind or "file", "sha256": file_sha256(weights)}


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = [
    "FLOAT_DTYPES", "SPECS", "build_metadata", "file_sha256", "input_record", "load_tensors", "open_artifact",
    "save_artifact", "write_artifact",
]  # fmt: skip
