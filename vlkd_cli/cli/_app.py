"""Shared CLI plumbing: the error boundary that turns exceptions into one line and an exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from vlkd_cli.errors import VlkdError

F = TypeVar("F", bound=Callable[..., Any])


def offline_by_default() -> None:
    """Never reach a model hub implicitly: HF_HUB_OFFLINE semantics unless the user opts in (VLKD_ONLINE=1)."""
    if os.environ.get("VLKD_ONLINE") != "1":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def fail(message: str, code: int) -> typer.Exit:
    """Print one line on stderr and return the Exit to raise."""
    typer.echo(f"vlkd: error: {message}", err=True)
    return typer.Exit(code)


def command_errors(func: F) -> F:
    """Wrap a command: VlkdError → its exit code; anything else → exit 1; one line, traceback only with VLKD_DEBUG=1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        offline_by_default()
        debug = os.environ.get("VLKD_DEBUG") == "1"
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except VlkdError as err:
            if debug:
                raise
            raise fail(str(err), err.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except MemoryError:
            if debug:
                raise
            raise fail("out of memory (try a smaller --batch-size)", 1) from None
        except OSError as err:
            if debug:
                raise
            where = f"{err.filename}: " if getattr(err, "filename", None) else ""
            raise fail(f"{where}{err.strerror or err}", 1) from None
        except Exception as err:
            if debug:
                raise
            raise fail(f"internal error: {type(err).__name__}: {err} (set VLKD_DEBUG=1 for the traceback)", 1) from None

    return wrapper  # type: ignore[return-value]


def rich_enabled() -> bool:
    """Progress bars on an interactive stderr only (and rank 0 only under torchrun)."""
    return sys.stderr.isatty() and os.environ.get("RANK", "0") == "0"
