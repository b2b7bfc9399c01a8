"""The rows of `DIR/summary.json` and the tables `vlkd demo` prints, read from the evaluation outputs.

One row per model: `name` is one of ROW_NAMES, with flat metric keys where they apply — `CIDEr`, `Bleu_4`
(Karpathy test, greedy), `vqa_overall` (full mode), `i2t_r1`, `t2i_r1` (and R@5/10, `rsum`; the test split in
`folds` folds, COCO's 1K protocol), `latency_ms` (end-to-end caption latency at batch 1, median), `gallery_s`
(retrieval rows: seconds to rank the gallery of config's gallery_images × gallery_texts, median; a cross-encoder's
extrapolated from a timed sample; a student with and without DCD is one architecture, timed once) — and `seeds`.
Student rows hold the mean over their seeds, with the std and the per-seed values under `std` and `per_seed`. The
"teacher" row holds each task's teacher (caption teacher on its own regions, the retrieval cross-encoder, the VQA
teacher), "teacher adapted" the caption (and VQA) teacher adapted to the student's boxes, "largest-object
template" the CIDEr-D of a caption naming only the largest object (the data's `priors.json`: what a model that
finds one object and says nothing else scores).

`comparisons(rows)` says, for each claim of the demo, the difference of the means and whether it exceeds the seed
spread (the sum of the two standard deviations).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from vlkd_cli.demo.plan import Plan, student_dir

CAPTION_ROWS = ("teacher", "teacher adapted", "largest-object template", "student no KD", "student KD no adaptation",
                "student KD + adaptation")  # fmt: skip
RETRIEVAL_ROWS = ("teacher", "cross student no DCD", "cross student DCD", "dual student no DCD", "dual student DCD",
                  "two-stage")  # fmt: skip
ROW_NAMES = (*CAPTION_ROWS, *RETRIEVAL_ROWS[1:])
CAPTION_KEYS = ("CIDEr", "Bleu_4")
TABLE_WIDTH = 150
RETRIEVAL_KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")
CLAIMS = (  # (row, baseline, metric): what the demo sets out to show
    ("student KD + adaptation", "student no KD", "CIDEr"),
    ("student KD no adaptation", "student no KD", "CIDEr"),
    ("student KD + adaptation", "student KD no adaptation", "CIDEr"),
    ("student KD + adaptation", "largest-object template", "CIDEr"),
    ("cross student DCD", "cross student no DCD", "rsum"),
    ("dual student DCD", "dual student no DCD", "rsum"),
)


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
    priors = r / "data" / "priors.json"
    template = json.loads(priors.read_text()).get("caption_largest_object_cider") if priors.is_file() else None
    rows = [
        {"name": "teacher", **_pick(_metrics(ev / "teacher"), CAPTION_KEYS),
         **_pick(_metrics(ev / "teacher-itm"), RETRIEVAL_KEYS), **_vqa(_metrics(ev / "teacher-vqa")),
         **({"latency_ms": latency["teacher"]} if "teacher" in latency else {}), **gallery_s("teacher-itm"),
         "seeds": 1},
        {"name": "teacher adapted", **_pick(_metrics(ev / "teacher-adapted"), CAPTION_KEYS),
         **_vqa(_metrics(ev / "teacher-vqa-adapted")), "seeds": 1},
        {"name": "largest-object template", **({"CIDEr": float(template)} if template is not None else {}),
         "seeds": 1},
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
    for name in RETRIEVAL_ROWS[1:]:
        source = "dual student DCD" if name == "two-stage" else name
        suffix = "-two-stage" if name == "two-stage" else ""
        runs = [_pick(_metrics(ev / (student_dir(r, source, seed).name + suffix)), RETRIEVAL_KEYS)
                for seed in plan.seeds]  # fmt: skip
        stage = "two_stage_total" if name == "two-stage" else "total"
        timed = student_dir(r, "cross student DCD" if name.startswith("cross") else "dual student DCD", plan.seed)
        rows.append({"name": name, **_mean_over(runs), **gallery_s(timed.name, stage)})
    return rows


def comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each claim of CLAIMS with both rows measured: the difference of the means, the seed spread (std of the row
    + std of the baseline; 0 for a single run) and whether the difference exceeds it."""
    by_name = {row["name"]: row for row in rows}
    found = []
    for name, baseline, key in CLAIMS:
        a, b = by_name.get(name, {}), by_name.get(baseline, {})
        if key not in a or key not in b:
            continue
        spread = a.get("std", {}).get(key, 0.0) + b.get("std", {}).get(key, 0.0)
        difference = a[key] - b[key]
        found.append({"row": name, "baseline": baseline, "metric": key, "difference": difference,
                      "spread": spread, "exceeds_spread": abs(difference) > spread})  # fmt: skip
    return found


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
    for name in CAPTION_ROWS:
        row = rows[name]
        caption.add_row(name, _cell(row, "CIDEr"), _cell(row, "Bleu_4"), _cell(row, "vqa_overall", digits=1),
                        _cell(row, "latency_ms", digits=1), str(row.get("seeds", 1)))  # fmt: skip
    console.print(caption)
    config = summary.get("config", {})
    size = f"{config.get('gallery_images', '?')} x {config.get('gallery_texts', '?')}"
    folds = f", {config['folds']} folds" if config.get("folds") else ""
    retrieval = Table("model", *RETRIEVAL_KEYS, "gallery s", "seeds", title=f"Retrieval (Karpathy test{folds}) — "
                      f"DCD; gallery s = time to rank a {size} gallery", box=None)  # fmt: skip
    for name in RETRIEVAL_ROWS:
        row = rows[name]
        retrieval.add_row(name if name != "teacher" else "teacher (cross-encoder)",
                          *(_cell(row, k, digits=1) for k in RETRIEVAL_KEYS), _cell(row, "gallery_s", digits=2),
                          str(row.get("seeds", 1)))  # fmt: skip
    console.print(retrieval)
    two_stage, teacher = rows["two-stage"], rows["teacher"]
    if all(k in two_stage and teacher.get(k) for k in ("i2t_r1", "t2i_r1")):
        console.print(f"two-stage keeps {100 * two_stage['i2t_r1'] / teacher['i2t_r1']:.0f} % (i2t) and "
                      f"{100 * two_stage['t2i_r1'] / teacher['t2i_r1']:.0f} % (t2i) of the teacher's R@1")
    for claim in summary.get("comparisons", []):
        verdict = "exceeds" if claim["exceeds_spread"] else "within"
        console.print(f"{claim['row']} − {claim['baseline']}: {claim['metric']} {claim['difference']:+.3f}, "
                      f"{verdict} the seed spread ({claim['spread']:.3f})")
