"""Commands' options → their config dataclasses, checked: every option lands in a field of its own name.

A command collects its options as a dict (`{"lr": 1e-4, "split": "train", ...}`) and calls
`config_from_options(FinetuneConfig, options)`. Each option goes to the field of that name of the config, and of
every nested config field (a field whose type is itself a dataclass, such as `train: TrainConfig`), to every one
that has it. An option that matches no field is a programming error (a renamed field, a typo) and raises at once,
instead of being dropped on the way to the run.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

C = TypeVar("C")


def _nested(cls: type) -> dict[str, type]:
    """The fields of `cls` whose type is a dataclass: name → that dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)
            if isinstance(hints.get(f.name), type) and dataclasses.is_dataclass(hints[f.name])}  # fmt: skip


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def config_from_options(cls: type[C], options: Mapping[str, Any], *, ignore: Iterable[str] = ()) -> C:
    """Build `cls` (a dataclass) from `options`; nested dataclass fields are built from the same options.

    Args:
        cls: The config dataclass.
        options: Option name → value, the names being field names of `cls` or of its nested configs.
        ignore: Option names the caller consumed itself (they must not be fields: then they would be dropped).

    Raises:
        TypeError: An option matches no field, or an ignored name is a field.
    """
    nested = _nested(cls)
    top = _names(cls) - set(nested)
    known = top.union(*(_names(sub) for sub in nested.values()))
    ignored = set(ignore)
    if ignored & known:
        raise TypeError(f"{cls.__name__}: options {sorted(ignored & known)} are fields and must not be ignored")
    unknown = sorted(set(options) - known - ignored - set(nested))
    if unknown:
        raise TypeError(f"{cls.__name__}: options {unknown} match no field of {cls.__name__} "
                        f"or of its nested {', '.join(sub.__name__ for sub in nested.values()) or 'configs'}")  # fmt: skip
    values = {name: value for name, value in options.items() if name in top}
    for name, sub in nested.items():
        if name in options:  # an already built nested config
            values[name] = options[name]
        else:
            values[name] = sub(**{k: v for k, v in options.items() if k in _names(sub)})
    return cls(**values)
