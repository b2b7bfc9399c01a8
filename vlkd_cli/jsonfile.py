"""Read a JSON file with every failure turned into a one-line vlkd error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vlkd_cli.errors import InputError, UsageError


def read_json(path: Path) -> Any:
    """Read a JSON file, turning every failure into a one-line vlkd error.

    Args:
        path: The file.

    Returns:
        The parsed document.

    Raises:
        UsageError: The path does not exist or is a directory.
        InputError: The file is unreadable, not UTF-8, or not valid JSON.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError("file does not exist", path=path)
    if path.is_dir():
        raise UsageError("is a directory, expected a JSON file", path=path)
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", path=path) from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"invalid JSON: not UTF-8 text ({exc.reason} at byte {exc.start})", path=path) from exc
    except RecursionError as exc:
        raise InputError("invalid JSON: nested too deeply", path=path) from exc
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path=path) from exc
