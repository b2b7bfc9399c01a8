"""A small registry of distillation losses: `@register_loss(name)`, `create_loss(name, **kwargs)`, `list_losses()`.

Every loss module of this package registers itself when `vlkd_cli.losses` is imported (its `__init__` imports all of
them), so callers need no import side effects. Names are the `--loss NAME=WEIGHT` names of `vlkd distill`.
The task loss (`task`) is the model's own `forward_loss` and is not registered here.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import TypeVar

from torch import nn

from vlkd_cli.errors import UsageError

_LOSSES: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_loss(name: str) -> Callable[[F], F]:
    """Class decorator: make `create_loss(name, ...)` build this loss module.

    Raises:
        ValueError: `name` is already registered to another class (a programming error, not a user error).
    """

    def wrap(factory: F) -> F:
        existing = _LOSSES.get(name)
        if existing is not None and existing is not factory:
            raise ValueError(f"loss {name!r} is already registered to {existing!r}")
        _LOSSES[name] = factory
        return factory

    return wrap


def list_losses() -> list[str]:
    """The registered loss names, sorted."""
    return sorted(_LOSSES)


def create_loss(name: str, **kwargs: object) -> nn.Module:
    """Build the registered loss `name` with keyword arguments.

    Raises:
        UsageError: unknown name ("unknown loss 'x'; known: ..." with a close-match suggestion), or keyword arguments
            that the loss does not accept.
    """
    factory = _LOSSES.get(name)
    if factory is None:
        known = list_losses()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"unknown loss '{name}'; known: {', '.join(known)}{hint}")
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as err:
        accepted = [p for p in inspect.signature(factory).parameters if p not in ("self", "args", "kwargs")]
        raise UsageError(f"loss '{name}': {err}; it accepts: {', '.join(accepted)}") from None
    return factory(**kwargs)
