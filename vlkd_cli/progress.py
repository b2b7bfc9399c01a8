"""Rich progress bars for loops over data: on stderr, rank 0 only, silenced with VLKD_PROGRESS=0."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator


def progress_enabled() -> bool:
    return os.environ.get("RANK", "0") == "0" and os.environ.get("VLKD_PROGRESS", "1") != "0"


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; the bar shows count, rate and time left."""
    if not progress_enabled():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
