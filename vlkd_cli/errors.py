"""The only exceptions the CLI turns into one-line messages, each with its exit code.

Exit codes (docs/reliability.md, "The contract"): 1 the run failed; 2 usage error (bad flag, a path that does not
exist); 3 an input exists but is invalid or incompatible.
"""

from __future__ import annotations

from pathlib import Path


class VlkdError(Exception):
    """Base class: `str(err)` is the one line shown to the user."""

    exit_code = 1

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class RunError(VlkdError):
    """The run itself failed (e.g. a non-finite loss). Exit 1."""

    exit_code = 1


class UsageError(VlkdError):
    """A bad flag value or a path that does not exist. Exit 2."""

    exit_code = 2


class InputError(VlkdError):
    """An input exists but is invalid or incompatible. Exit 3."""

    exit_code = 3
