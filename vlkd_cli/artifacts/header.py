"""Read and validate a safetensors header without importing torch or touching tensor data.

The safetensors layout: an 8-byte little-endian header length N, N bytes of JSON, then the raw tensor bytes.
The JSON maps tensor names to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the
data section) plus an optional `__metadata__` str→str map. We check everything the format promises so that
a truncated file or a header that lies about offsets or sizes is a clear exit-3 error, never a traceback.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from vlkd_cli.errors import InputError

# Bytes per element of every safetensors dtype.
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip

# The reference implementation refuses headers above 100 MB; so do we (a "huge header length" is a lie).
MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True)
class TensorInfo:
    """One tensor entry of a header: dtype name, shape and byte range in the data section."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Header:
    """A validated safetensors header."""

    path: Path
    metadata: dict[str, str]
    tensors: dict[str, TensorInfo]
    data_start: int  # absolute file offset of the data section

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.metadata.get(key, default)


def read_header(path: Path) -> Header:
    """Parse and validate the header of `path`; InputError (exit 3) on anything that does not hold."""
    path = Path(path)
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise InputError("not a safetensors file: shorter than its 8-byte header length", path)
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or length > file_size - 8:
                raise InputError(
                    f"corrupt safetensors header: header length {length} exceeds the file size {file_size}"
                    if length <= MAX_HEADER_BYTES
                    else f"corrupt safetensors header: header length {length} is over the 100 MB limit",
                    path,
                )
            raw = f.read(length)
    except OSError as err:
        raise InputError(f"cannot read file: {err.strerror or err}", path) from err
    header = _parse_json(raw, path)
    metadata = _parse_metadata(header.pop("__metadata__", None), path)
    tensors = {name: _parse_tensor(name, entry, path) for name, entry in header.items()}
    _check_layout(tensors, data_size=file_size - 8 - length, path=path)
    return Header(path=path, metadata=metadata, tensors=tensors, data_start=8 + length)


def _parse_json(raw: bytes, path: Path) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"corrupt safetensors header: not valid JSON ({err})", path) from err
    if not isinstance(header, dict):
        raise InputError("corrupt safetensors header: JSON is not an object", path)
    return header


def _parse_metadata(metadata: object, path: Path) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InputError("corrupt safetensors header: __metadata__ must map strings to strings", path)
    return metadata


def _parse_tensor(name: str, entry: object, path: Path) -> TensorInfo:
    def bad(why: str) -> InputError:
        return InputError(f"corrupt safetensors header: tensor '{name}' {why}", path)

    if not isinstance(entry, dict):
        raise bad("entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise bad(f"has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise bad(f"has an invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and o >= 0 for o in offsets)
        or offsets[1] < offsets[0]
    ):
        raise bad(f"has invalid data_offsets {offsets!r}")
    nbytes = math.prod(shape) * DTYPE_SIZES[dtype]
    if offsets[1] - offsets[0] != nbytes:
        raise bad(f"claims {offsets[1] - offsets[0]} bytes but {dtype} x {shape} needs {nbytes}")
    return TensorInfo(dtype=dtype, shape=tuple(shape), begin=offsets[0], end=offsets[1])


def _check_layout(tensors: dict[str, TensorInfo], *, data_size: int, path: Path) -> None:
    """Tensors must tile the data section exactly: no gap, no overlap, nothing past the end of the file."""
    position = 0
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if info.begin != position:
            raise InputError(
                f"corrupt safetensors header: tensor '{name}' starts at byte {info.begin}, expected {position}", path
            )
        position = info.end
    if position != data_size:
        what = "truncated" if position > data_size else "has trailing bytes"
        raise InputError(
            f"corrupt safetensors file: {what} (tensors need {position} data bytes, the file holds {data_size})", path
        )
