"""The rows of `DIR/summary.json` and the tables `vlkd demo` prints, read from the evaluation outputs.

One row per model: `name` is one of ROW_NAMES, with flat metric keys where they apply — `CIDEr`, `Bleu_4`
(Karpathy test, greedy), `vqa_overall` (full mode), `i2t_r1`, `t2i_r1` (and R@5/10), `latency_ms` (end-to-end
caption latency at batch 1, median), `gallery_s` (retrieval rows: seconds to rank the gallery of config's
gallery_images × gallery_texts, median; the cross-encoder's extrapolated from a timed sample; both dual rows are
one architecture, timed once) — and `seeds`. Student rows hold the mean over their seeds, with the
per-seed values under `per_seed`. The "teacher" row holds each task's teacher (caption teacher on its own regions,
the retrieval cross-encoder, the VQA teacher), "teacher adapted" the caption (and VQA) teacher adapted to the
student's boxes.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from vlkd_cli.demo.plan import Plan, student_dir

ROW_NAMES = ("teacher", "teacher adapted", "student no KD", "student KD no adaptation", "student KD + adaptation",
             "dual student no DCD", "dual student DCD", "two-stage")  # fmt: skip
CAPTION_KEYS = ("CIDEr", "Bleu_4")
TABLE_WIDTH = 132
RETRIEVAL_KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")


def _metrics(path: Path) -> dict[str, Any] | None:
    file = path / "metrics.json"
    return json.loads(file.read_text()) if file.is_file() else None


def _pick(metrics: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, float]:
    return {k: float(metrics[k]) for k in keys if metrics and metrics.get(k) is not None}


def _vqa(metrics: dict[str, Any] | None) -> dict[str, float]:
    return {"vqa_overall": float(metrics["overall"])} if metrics else {}


def _mean_over(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Mean of each key over seeds, plus the per-seed values and the count."""
    keys = [k for k in runs[0] if all(k in r for r in runs)] if runs else []
    row: dict[str, Any] = {k: statistics.mean(r[k] for r in runs) for k in keys}
    if len(runs) > 1:
        row["std"] = {k: statistics.stdev(r[k] for r in runs) for k in keys}
    row["per_seed"] = runs
    row["seeds"] = len(runs)
    return row


def _latency(root: Path) -> dict[str, float]:
    """Model directory → median end-to-end milliseconds at batch 1."""
    file = root / "latency" / "latency.json"
    if not file.is_file():
        return {}
    results = json.loads(file.read_text())["results"]
    return {Path(r["model"]).name: float(r["median_ms"]) for r in results
            if r.get("stage") == "total" and r.get("batch_size") == 1 and "median_ms" in r}  # fmt: skip


def _gallery_seconds(root: Path) -> dict[tuple[str, str], float]:
    """(model directory name, stage) → median seconds to rank the gallery (retrieval latency)."""
    file = root / "latency-retrieval" / "latency.json"
    if not file.is_file():
        return {}
    results = json.loads(file.read_text())["results"]
    return {(Path(r["model"]).name, r["stage"]): float(r["median_ms"]) / 1000 for r in results
            if r.get("stage", "").endswith("total") and r.get("median_ms") is not None}  # fmt: skip


def summary_rows(plan: Plan) -> list[dict[str, Any]]:
    """The eight rows (see the module docstring) from the outputs under plan.root."""
    r, ev = plan.root, plan.root / "eval"
    latency, gallery = _latency(r), _gallery_seconds(r)

    def gallery_s(model: str, stage: str = "total") -> dict[str, float]:
        return {"gallery_s": gallery[model, stage]} if (model, stage) in gallery else {}

    student_ms = latency.get(student_dir(r, "student KD + adaptation", plan.seed).name)
    rows = [
        {"name": "teacher", **_pick(_metrics(ev / "teacher"), CAPTION_KEYS),
         **_pick(_metrics(ev / "teacher-itm"), RETRIEVAL_KEYS), **_vqa(_metrics(ev / "teacher-vqa")),
         **({"latency_ms": latency["teacher"]} if "teacher" in latency else {}), **gallery_s("teacher-itm"),
         "seeds": 1},
        {"name": "teacher adapted", **_pick(_metrics(ev / "teacher-adapted"), CAPTION_KEYS),
         **_vqa(_metrics(ev / "teacher-vqa-adapted")), "seeds": 1},
    ]  # fmt: skip
    vqa_students = {"student no KD": "vqa student no KD", "student KD + adaptation": "vqa student KD"}
    for name in ("student no KD", "student KD no adaptation", "student KD + adaptation"):
        runs = []
        for seed in plan.seeds:
            run = _pick(_metrics(ev / student_dir(r, name, seed).name), CAPTION_KEYS)
            if name in vqa_students:
                run.update(_vqa(_metrics(ev / student_dir(r, vqa_students[name], seed).name)))
            runs.append(run)
        rows.append({"name": name, **_mean_over(runs), **({"latency_ms": student_ms} if student_ms else {})})
    for name, suffix in (("dual student no DCD", ""), ("dual student DCD", ""), ("two-stage", "-two-stage")):
        source = "dual student no DCD" if name == "dual student no DCD" else "dual student DCD"
        runs = [_pick(_metrics(ev / (student_dir(r, source, seed).name + suffix)), RETRIEVAL_KEYS)
                for seed in plan.seeds]  # fmt: skip
        stage = "two_stage_total" if name == "two-stage" else "total"  # one architecture: the DCD student is timed
        timed = student_dir(r, "dual student DCD", plan.seed).name
        rows.append({"name": name, **_mean_over(runs), **gallery_s(timed, stage)})
    return rows


def _cell(row: dict[str, Any], key: str, scale: float = 1.0, digits: int = 3) -> str:
    if key not in row:
        return "-"
    spread = row.get("std", {}).get(key)
    text = f"{row[key] * scale:.{digits}f}"
    return text + (f" ± {spread * scale:.{digits}f}" if spread is not None else "")


def print_tables(summary: dict[str, Any]) -> None:
    """The caption ablation, the retrieval table (and VQA when present), as rich tables."""
    from rich.console import Console
    from rich.table import Table

    rows = {row["name"]: row for row in summary["rows"]}
    console = Console(markup=False, highlight=False, soft_wrap=True)
    console.width = max(console.width, TABLE_WIDTH)  # a pipe or an 80-column terminal would wrap every row
    caption = Table("model", "CIDEr-D", "BLEU-4", "VQA %", "latency ms (b=1)", "seeds",
                    title="Captioning (Karpathy test, greedy) — DistillVLM ablation", box=None)  # fmt: skip
    for name in ROW_NAMES[:5]:
        row = rows[name]
        caption.add_row(name, _cell(row, "CIDEr"), _cell(row, "Bleu_4"), _cell(row, "vqa_overall", digits=1),
                        _cell(row, "latency_ms", digits=1), str(row.get("seeds", 1)))  # fmt: skip
    console.print(caption)
    config = summary.get("config", {})
    size = f"{config.get('gallery_images', '?')} x {config.get('gallery_texts', '?')}"
    retrieval = Table("model", *RETRIEVAL_KEYS, "gallery s", "seeds", title="Retrieval (Karpathy test) — DCD; "
                      f"gallery s = time to rank a {size} gallery", box=None)  # fmt: skip
    for name in ("teacher", *ROW_NAMES[5:]):
        row = rows[name]
        retrieval.add_row(name if name != "teacher" else "teacher (cross-encoder)",
                          *(_cell(row, k, digits=1) for k in RETRIEVAL_KEYS), _cell(row, "gallery_s", digits=2),
                          str(row.get("seeds", 1)))  # fmt: skip
    console.print(retrieval)
