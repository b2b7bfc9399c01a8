"""A safetensors writer that streams tensor bytes from disk, so artifacts larger than memory can be written.

safetensors' own `save_file` needs every tensor in memory; `extract-regions` over full COCO writes tens of GB.
Each tensor is accumulated in its own temp file (`TensorBuilder`), then the header and the bytes are copied
into one temp file that atomically replaces the target. The output is a standard safetensors file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlkd_cli.artifacts.atomic import atomic_file
from vlkd_cli.artifacts.header import DTYPE_SIZES

NUMPY_TO_SAFETENSORS = {
    np.dtype("bool"): "BOOL", np.dtype("uint8"): "U8", np.dtype("int8"): "I8", np.dtype("int16"): "I16",
    np.dtype("uint16"): "U16", np.dtype("float16"): "F16", np.dtype("int32"): "I32", np.dtype("uint32"): "U32",
    np.dtype("float32"): "F32", np.dtype("int64"): "I64", np.dtype("uint64"): "U64", np.dtype("float64"): "F64",
}  # fmt: skip
_CHUNK = 16 << 20


@dataclass(frozen=True)
class PendingTensor:
    """A tensor ready to be written: its bytes live in `source` (a file) or `data` (in memory)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    sha256: str
    source: Path | None = None
    data: bytes | memoryview | None = None


class TensorBuilder:
    """Append rows of one tensor to a temp file, hashing as it goes. Memory stays flat."""

    def __init__(self, path: Path, name: str, dtype: np.dtype, row_shape: tuple[int, ...]) -> None:
        self.path, self.name, self.dtype, self.row_shape = path, name, np.dtype(dtype), tuple(row_shape)
        self.rows = 0
        self._hash = hashlib.sha256()
        self._file = open(path, "wb")

    def append(self, rows: np.ndarray) -> None:
        """Append an array of shape (n, *row_shape), cast to the builder's dtype."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"{self.name}: rows of shape {rows.shape[1:]}, expected {self.row_shape}")
        if rows.size == 0:
            self.rows += rows.shape[0]
            return
        buffer = memoryview(rows.reshape(-1)).cast("B")
        self._file.write(buffer)
        self._hash.update(buffer)
        self.rows += rows.shape[0]

    def finish(self) -> PendingTensor:
        self._file.close()
        return PendingTensor(
            self.name, NUMPY_TO_SAFETENSORS[self.dtype], (self.rows, *self.row_shape), self._hash.hexdigest(), self.path
        )

    def close(self) -> None:
        self._file.close()


def pending_from_array(name: str, array: np.ndarray) -> PendingTensor:
    """An in-memory numpy array as a PendingTensor."""
    array = np.ascontiguousarray(array)
    data = memoryview(array.reshape(-1)).cast("B") if array.size else b""
    return PendingTensor(
        name, NUMPY_TO_SAFETENSORS[array.dtype], tuple(array.shape), hashlib.sha256(data).hexdigest(), data=data
    )


def content_sha256(tensors: list[PendingTensor]) -> str:
    """A hash of names, dtypes, shapes and bytes of all tensors: the artifact's identity in lineage records."""
    entries = [[t.name, t.dtype, list(t.shape), t.sha256] for t in sorted(tensors, key=lambda t: t.name)]
    return hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).hexdigest()


def write_safetensors(path: Path, tensors: list[PendingTensor], metadata: dict[str, str]) -> None:
    """Write a standard safetensors file atomically (tensors laid out in name order)."""
    ordered = sorted(tensors, key=lambda t: t.name)
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for tensor in ordered:
        nbytes = int(np.prod(tensor.shape, dtype=np.int64)) * DTYPE_SIZES[tensor.dtype]
        header[tensor.name] = {"dtype": tensor.dtype, "shape": list(tensor.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the data section starts 8-byte aligned, as safetensors does it
    with atomic_file(path) as tmp, open(tmp, "wb") as out:
        out.write(struct.pack("<Q", len(raw)))
        out.write(raw)
        for tensor in ordered:
            if tensor.source is not None:
                with open(tensor.source, "rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
            else:
                out.write(tensor.data or b"")
        out.flush()
