"""The loss terms of each distillation method and their default weights: the one table `vlkd distill --loss
NAME=WEIGHT` is checked against and the task modules (`distillvlm.py`, `dcd.py`) compute. Importable without torch.

`task` is the student's own objective (its model's `forward_loss`); the other names are the distillation terms of
`vlkd_cli.losses`. Adding a term: its function in `losses/`, its name and default weight here, its computation in
the method's module (docs/architecture.md).
"""

from __future__ import annotations

from vlkd_cli.errors import UsageError

METHODS = ("distillvlm", "dcd")
# method → {term: default weight}; the order is the order of `--help` and of the log's loss columns.
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "distillvlm": {"task": 1.0, "attention_mse": 10.0, "token_nce": 0.5, "logit_kd": 1.0},
    "dcd": {"dcd": 1.0, "task": 0.0},
}


def terms(method: str) -> tuple[str, ...]:
    """The term names of `method`."""
    return tuple(DEFAULT_WEIGHTS[method])


def default_weights(method: str) -> dict[str, float]:
    """A fresh copy of `method`'s default weights."""
    return dict(DEFAULT_WEIGHTS[method])


def describe_defaults(method: str) -> str:
    """`task=1 attention_mse=10 ...`: the defaults as `--loss` would take them."""
    return " ".join(f"{name}={weight:g}" for name, weight in DEFAULT_WEIGHTS[method].items())


def parse_loss_weights(specs: list[str] | None, method: str = "distillvlm") -> dict[str, float]:
    """`--loss NAME=WEIGHT` (repeatable) → the method's weights; unspecified terms are 0 once any is given."""
    if method not in METHODS:
        raise UsageError(f"--method must be {' or '.join(METHODS)}, got {method!r}")
    names = terms(method)
    if not specs:
        return default_weights(method)
    weights = {name: 0.0 for name in names}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or name.strip() not in names:
            raise UsageError(f"--loss takes NAME=WEIGHT with NAME one of {', '.join(names)} for --method {method}, "
                             f"got {spec!r}")  # fmt: skip
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--loss {spec}: the weight is not a number") from None
    return weights
