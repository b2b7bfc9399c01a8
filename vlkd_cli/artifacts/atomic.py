"""Atomic outputs: a file or directory appears complete or not at all.

A temp sibling is written and then `os.replace`d over the target, so a failed or killed command leaves no
half file under the final name and an existing output is replaced only by a complete new one.

Temp names carry the writer's pid and host (`.NAME.vlkd-tmp-PID@HOST-XXXX`): a failed write removes its own temp,
and the temp a killed (kill -9) writer could not remove is swept by the next write of the same NAME on that host
once its pid is gone. An OSError while writing (e.g. ENOSPC) is re-raised naming the target, not the temp.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_MARK = ".vlkd-tmp-"
ASIDE_MARK = ".vlkd-old-"  # an output moved aside while its replacement is renamed in


def temp_sibling(path: Path, *, directory: bool = False) -> Path:
    """A fresh hidden temp path in the same directory as `path` (same file system, so rename is atomic).

    Temps of `path` left by dead writers on this host are removed first (see the module docstring).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    prefix = f".{path.name}{TEMP_MARK}{os.getpid()}@{_host()}-"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(fd)
    return Path(name)


def sweep_stale_temps(path: Path) -> list[Path]:
    """Remove the temp siblings of `path` whose writer (a pid on this host) no longer runs; return them."""
    prefix = f".{path.name}{TEMP_MARK}"
    removed = []
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix)]
    except OSError:
        return removed
    for name in names:
        owner, _, rest = name[len(prefix) :].partition("@")
        host = rest.rpartition("-")[0]  # mkstemp's random suffix never holds a '-'
        if not owner.isdigit() or host != _host() or _alive(int(owner)):
            continue  # another host's, a live writer's, or an older naming: leave it
        stale = path.parent / name
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                stale.unlink()
        removed.append(stale)
    return removed


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def naming_target(err: OSError, tmp: Path, path: Path) -> OSError:
    """`err` re-made to name `path` where it named nothing or a file inside the temp `tmp` (same errno)."""
    named = Path(err.filename) if isinstance(err.filename, str) else None
    if named is not None and named != tmp and tmp not in named.parents:
        return err
    inside = named.relative_to(tmp) if named is not None and named != tmp else None
    target = path / inside if inside is not None else path
    return OSError(err.errno or errno.EIO, err.strerror or str(err), str(target))


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces `path`, on any error it is removed."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise naming_target(err, tmp, path) from err
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
    except OSError as err:
        raise naming_target(err, tmp, path) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(new: Path, path: Path) -> None:
    """Swap directory `new` into `path`. The old one is renamed aside first, so the window without either is
    two renames long and a crash in it leaves the old output under its hidden aside name, never a half one."""
    if path.is_dir() and not path.is_symlink():
        # Not a temp name: the sweep must never take the old output of a writer killed between the two renames.
        aside = Path(tempfile.mkdtemp(prefix=f".{path.name}{ASIDE_MARK}", dir=path.parent))
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
