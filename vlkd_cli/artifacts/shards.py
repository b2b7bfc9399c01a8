"""Sharded artifacts: `--shard K/N` writes `NAME-0000K-of-0000N.safetensors` beside `NAME.safetensors`.

K is 0-based (0 <= K < N, as torchrun ranks and Slurm array ids from 0). A reader given `NAME.safetensors`
reads that file if it exists, else the complete shard set; a set with a missing shard is exit 3.
"""

from __future__ import annotations

import re
from pathlib import Path

from vlkd_cli.errors import InputError, UsageError


def parse_shard(text: str) -> tuple[int, int]:
    """Parse 'K/N' (0 <= K < N)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise UsageError(f"--shard must look like K/N (e.g. 0/4), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text}: need 0 <= K < N")
    return index, count


def shard_path(path: Path, index: int, count: int) -> Path:
    """`regions.safetensors`, 1, 4 → `regions-00001-of-00004.safetensors`."""
    return path.with_name(f"{path.stem}-{index:05d}-of-{count:05d}{path.suffix}")


def shard_range(num_items: int, index: int, count: int) -> range:
    """The contiguous block of items of shard `index` (so concatenating shards in order gives the 1-shard order)."""
    return range(num_items * index // count, num_items * (index + 1) // count)


def resolve_shards(path: Path) -> list[Path]:
    """`[path]` if it exists, else the complete shard set in order; exit 2 if neither exists, 3 if incomplete."""
    path = Path(path)
    if path.is_file():
        return [path]
    pattern = re.compile(re.escape(path.stem) + r"-(\d{5})-of-(\d{5})" + re.escape(path.suffix) + "$")
    found: dict[int, dict[int, Path]] = {}
    if path.parent.is_dir():
        for candidate in path.parent.iterdir():
            match = pattern.match(candidate.name)
            if match:
                found.setdefault(int(match.group(2)), {})[int(match.group(1))] = candidate
    if not found:
        raise UsageError("no such file, and no shard set of it", path)
    if len(found) > 1:
        raise InputError(f"shard sets of different sizes lie beside it: of {sorted(found)}", path)
    count, shards = next(iter(found.items()))
    missing = [shard_path(path, k, count).name for k in range(count) if k not in shards]
    if missing:
        raise InputError(f"incomplete shard set: missing {', '.join(missing)}", path)
    return [shards[k] for k in range(count)]
