"""The figures of a report, drawn with matplotlib. Each function returns a `Figure` (or None when its input holds
nothing to draw); `save` writes it as PNG. Figures are made without pyplot: no display, no global registry that
keeps them open."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

DPI = 110
COUNTS = ("images", "samples", "questions", "texts")  # validation log keys that count items, not metrics


def training_curves(name: str, entries: Sequence[dict[str, Any]]) -> Figure | None:
    """One panel per group of a run's `log.jsonl`: the losses (every `*loss*` part), the learning rate, and each
    validation metric (`val/...`), against the optimizer step."""
    train = [e for e in entries if "step" in e and not any(k.startswith("val/") for k in e)]
    val = [e for e in entries if "step" in e and any(k.startswith("val/") for k in e)]
    losses = sorted({k for e in train for k, v in e.items() if "loss" in k and _number(v)})
    metrics = sorted({k for e in val for k, v in e.items() if k.startswith("val/") and _number(v)
                      and not k.endswith(COUNTS)})  # fmt: skip
    panels: list[tuple[str, list[str], Sequence[dict[str, Any]]]] = []
    if losses:
        panels.append(("losses", losses, train))
    if any("lr" in e for e in train):
        panels.append(("learning rate", ["lr"], train))
    panels += [(metric, [metric], val) for metric in metrics]
    if not panels:
        return None
    figure = Figure(figsize=(4.2 * len(panels), 3.2))
    axes = figure.subplots(1, len(panels), squeeze=False)
    for ax, (title, keys, rows) in zip(axes[0], panels):
        for key in keys:
            points = [(e["step"], e[key]) for e in rows if _number(e.get(key))]
            if points:
                ax.plot(*zip(*points), marker="o" if len(points) < 20 else None, markersize=3, label=key)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    figure.suptitle(name, fontsize=11)
    figure.tight_layout()
    return figure


def ablation_bars(title: str, rows: Sequence[dict[str, Any]], keys: Sequence[str], *, scale: float = 1.0,
                  ylabel: str = "") -> Figure | None:  # fmt: skip
    """Grouped bars: one group per row (model) of the demo's summary, one bar per metric key, the error bar the
    standard deviation over seeds (rows of one seed have none); rows without the keys are left out."""
    rows = [r for r in rows if any(k in r for k in keys)]
    if not rows:
        return None
    figure = Figure(figsize=(max(5.0, 1.3 * len(rows) * max(1, len(keys)) ** 0.5), 3.6))
    ax = figure.subplots()
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        xs = [i + (j - (len(keys) - 1) / 2) * width for i in range(len(rows))]
        values = [scale * r.get(key, math.nan) for r in rows]
        errors = [scale * r.get("std", {}).get(key, math.nan) for r in rows]  # no bar for a single seed
        ax.bar(xs, values, width, yerr=errors, capsize=3, label=key)
    ax.set_xticks(range(len(rows)), [f"{r['name']}\n({r.get('seeds', 1)} seed{'s' if r.get('seeds', 1) > 1 else ''})"
                                     for r in rows], fontsize=8)  # fmt: skip
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    if len(keys) > 1:
        ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def latency_stacks(title: str, results: Sequence[dict[str, Any]], batch_size: int) -> Figure | None:
    """Stacked bars: per model, the median milliseconds of each stage (decode, detector, ..., head) at one batch
    size; the bar's height is their sum, with each model's measured `total` marked beside it."""
    rows = [r for r in results if r.get("batch_size") == batch_size and _number(r.get("median_ms"))]
    models = list(dict.fromkeys(r["model"] for r in rows))
    stages = list(dict.fromkeys(r["stage"] for r in rows if not r["stage"].endswith("total")))
    if not models or not stages:
        return None
    median = {(r["model"], r["stage"]): r["median_ms"] for r in rows}
    figure = Figure(figsize=(max(4.5, 1.6 * len(models) + 2.5), 3.8))
    ax = figure.subplots()
    bottom = [0.0] * len(models)
    for stage in stages:
        heights = [median.get((m, stage), 0.0) for m in models]
        ax.bar(range(len(models)), heights, 0.6, bottom=bottom, label=stage)
        bottom = [b + h for b, h in zip(bottom, heights)]
    for i, model in enumerate(models):
        if (model, "total") in median:
            ax.annotate(f"total {median[model, 'total']:.1f} ms", (i, bottom[i]), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(models)), [Path(m).name for m in models], fontsize=8)
    ax.set_ylabel(f"median ms (batch {batch_size})")
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    return figure


def save(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=DPI, format="png")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
