"""Atomic outputs: a file or directory appears complete or not at all.

A temp sibling is written and then `os.replace`d over the target, so a failed or killed command leaves no
half file under the final name and an existing output is replaced only by a complete new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_MARK = ".vlkd-tmp-"


def temp_sibling(path: Path, *, directory: bool = False) -> Path:
    """A fresh hidden temp path in the same directory as `path` (same file system, so rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}{TEMP_MARK}"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces `path`, on any error it is removed."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temp directory to fill; on success it takes the place of `path` (an old directory is removed)."""
    path = Path(path)
    tmp = temp_sibling(path, directory=True)
    try:
        yield tmp
        replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(new: Path, path: Path) -> None:
    """Swap directory `new` into `path`. The old one is renamed aside first, so the window without either is
    two renames long and a crash in it leaves the old output under its hidden aside name, never a half one."""
    if path.is_dir() and not path.is_symlink():
        aside = temp_sibling(path, directory=True)
        os.rmdir(aside)
        os.replace(path, aside)
        os.replace(new, path)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        if path.exists() or path.is_symlink():
            path.unlink()
        os.replace(new, path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file (JSON, config) atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
