"""The reliability suite: each fault of docs/reliability.md ("Faults"), its exit code and what is left on disk.

Helpers shared by the theme files: the one-line-error check of the command contract, header surgery on
safetensors files, and listings of the temp files a write may leave behind.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

from tests.conftest import assert_refused  # noqa: F401  (the theme files import it from here)
from vlkd_cli.artifacts.atomic import ASIDE_MARK, TEMP_MARK


def split_safetensors(raw: bytes) -> tuple[dict, bytes]:
    """(header JSON, data section) of a safetensors file's bytes."""
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def join_safetensors(header: dict, data: bytes) -> bytes:
    """A safetensors file's bytes from a header (written as given, padded to 8 bytes) and a data section."""
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def edit_header(path: Path, edit: Callable[[dict], None]) -> None:
    """Rewrite `path` in place with `edit` applied to its header (the data section is kept byte for byte)."""
    header, data = split_safetensors(path.read_bytes())
    edit(header)
    path.write_bytes(join_safetensors(header, data))


def leftovers(directory: Path) -> list[str]:
    """Names of vlkd temp or moved-aside entries anywhere under `directory`."""
    return sorted(p.name for p in Path(directory).rglob("*") if TEMP_MARK in p.name or ASIDE_MARK in p.name)
