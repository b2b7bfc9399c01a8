"""Finding what can be drawn under run directories, and writing the report (`vlkd report`, `vlkd demo`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vlkd_cli.artifacts.atomic import atomic_dir
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.report import figures
from vlkd_cli.report.page import Entry, index_html

SECTION_ORDER = {"ablation": 0, "latency": 1, "training curves": 2}
Drawn = tuple[str, str, str, Any]  # section, title, caption, matplotlib figure


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise InputError(f"line {number} is not JSON: {err}", path) from None
    return entries


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON: {err}", path) from None


def _found(root: Path, name: str) -> list[Path]:
    """Files called `name` under `root` (itself included), outside checkpoint directories, in path order."""
    return sorted(p for p in root.rglob(name) if "checkpoints" not in p.relative_to(root).parts)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def ablation_figures(summary_file: Path, where: str) -> list[Drawn]:
    """The demo's summary as grouped bars (captioning, VQA, retrieval R@1), error bars = std over seeds."""
    rows = _read_json(summary_file).get("rows", [])
    caption = [r for r in rows if r.get("CIDEr") is not None]
    retrieval = [r for r in rows if "i2t_r1" in r]  # the teacher row holds the retrieval teacher's recall too
    drawn = []
    for title, picked, keys, unit in (
        ("captioning (Karpathy test)", caption, ("CIDEr", "Bleu_4"), "score"),
        ("VQA", [r for r in rows if "vqa_overall" in r], ("vqa_overall",), "accuracy %"),
        ("retrieval R@1 (Karpathy test)", retrieval, ("i2t_r1", "t2i_r1"), "%"),
    ):
        figure = figures.ablation_bars(title, picked, keys, ylabel=unit)
        if figure is not None:
            drawn.append(("ablation", title, f"{where}: mean over seeds, error bar = std over seeds", figure))
    return drawn


def latency_figures(latency_file: Path, where: str) -> list[Drawn]:
    """One stacked-bar figure per batch size of a `latency.json`."""
    results = _read_json(latency_file).get("results", [])
    drawn = []
    for size in sorted({r.get("batch_size") for r in results if isinstance(r.get("batch_size"), int)}):
        title = f"latency per stage, batch {size}: {latency_file.parent.name}"
        figure = figures.latency_stacks(title, results, size)
        if figure is not None:
            drawn.append(("latency", title, where, figure))
    return drawn


def find_figures(root: Path) -> list[Drawn]:
    """Everything drawable under one run directory: summaries, latency runs, training logs."""
    drawn: list[Drawn] = []
    for path in _found(root, "summary.json"):
        drawn += ablation_figures(path, str(path.relative_to(root.parent)))
    for path in _found(root, "latency.json"):
        drawn += latency_figures(path, str(path.relative_to(root.parent)))
    for log in _found(root, "log.jsonl"):
        name = str(log.parent.relative_to(root.parent))
        figure = figures.training_curves(name, _read_jsonl(log))
        if figure is not None:
            drawn.append(("training curves", name, str(log.relative_to(root.parent)), figure))
    return drawn


def write_report(runs: tuple[Path, ...], out: Path, title: str = "vlkd report") -> dict[str, Any]:
    """Draw every figure found under `runs` into `out` (PNG files + index.html), atomically; return a summary."""
    for root in runs:
        if not Path(root).is_dir():
            raise UsageError("not a directory", root)
    drawn = [item for root in runs for item in find_figures(Path(root).resolve())]
    if not drawn:
        raise InputError("nothing to draw: no log.jsonl, summary.json or latency.json under these directories",
                         runs[0])  # fmt: skip
    drawn.sort(key=lambda item: SECTION_ORDER.get(item[0], len(SECTION_ORDER)))
    entries: list[Entry] = []
    with atomic_dir(Path(out)) as tmp:
        for number, (section, name, caption, figure) in enumerate(drawn, 1):
            png = tmp / f"{number:02d}-{_slug(name)}.png"
            figures.save(figure, png)
            entries.append(Entry(section, name, png, caption))
        (tmp / "index.html").write_text(index_html(title, entries, [str(r) for r in runs]), encoding="utf-8")
    return {"figures": len(entries), "out": str(out), "sections": sorted({e.section for e in entries})}
