"""Shared CLI plumbing: the error boundary that turns exceptions into one line and an exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer vendors click from 0.2x on; older releases use click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors

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


class OneLineErrors(TyperGroup):
    """The app's group: argument errors (a missing file, a bad choice, an unknown flag) as the command contract
    wants them, one line on stderr and exit 2, instead of click's boxed usage text."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:  # fmt: skip
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as err:
            err.show()
            sys.exit(err.exit_code)
        except click_errors.ClickException as err:
            command = getattr(getattr(err, "ctx", None), "command_path", None)
            hint = f" (see '{command} --help')" if command and isinstance(err, click_errors.UsageError) else ""
            typer.echo(f"vlkd: error: {err.format_message()}{hint}", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("vlkd: error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


OPTION_ORDER = "vlkd.option_order"


class OrderedOptions(TyperCommand):
    """A command that remembers the order of the options given on its command line.

    Typer hands a repeated option to the command as one list, so `--model T --detector TD --model S --detector SD`
    and `--model T --model S --detector TD --detector SD` look alike. Before the normal parse, this class runs
    click's own option parser on a copy of the arguments and keeps the parameter name of every occurrence, in
    command-line order, in `ctx.meta[OPTION_ORDER]` (e.g. `["model", "detector", "model", "detector", "images"]`).
    Options that come from `--config` or defaults are not in it.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            _, _, order = self.make_parser(ctx).parse_args(args=list(args))
            ctx.meta[OPTION_ORDER] = [param.name for param in order]
        except click_errors.ClickException:
            pass  # the normal parse below reports the same error
        return super().parse_args(ctx, args)
