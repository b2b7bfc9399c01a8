"""`vlkd report RUN_DIR... --out DIR`: pictures of finished runs, where people would rather look than read.

Under each RUN_DIR it finds every training run (`log.jsonl`: every loss part, the learning rate and each
validation metric against the step), a demo's `summary.json` (its ablation as bars, the error bars the standard
deviation over seeds) and every `latency.json` (median milliseconds per stage, stacked, per model and batch size).
The output directory holds one PNG per figure and an `index.html` with all of them embedded; it is written whole or
not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkd_cli.report.build import write_report


@dataclass(frozen=True)
class ReportConfig:
    runs: tuple[Path, ...]
    out: Path
    title: str = "vlkd report"


def run(cfg: ReportConfig) -> dict[str, Any]:
    """Draw every figure of `cfg.runs` into `cfg.out` (PNG files + index.html); return what was written."""
    return write_report(cfg.runs, cfg.out, cfg.title)
