"""What int8 (and bf16) inference costs in accuracy: a `vlkd demo` run's student evaluations repeated per precision.

A finished demo directory keeps the exact command of every step (`logs/NN-<step>.done`). This script re-runs the
students' `eval-caption` and `eval-retrieval` commands of the chosen seeds with `--precision fp32` and with each
other precision (the same model, regions and test split; only `--out` and `--precision` change), and prints CIDEr
(captions) and R@1 both ways + rsum (retrieval) side by side, with each evaluation's wall time. The fp32 rerun must
reproduce the demo's own numbers (printed as a check).

Usage:  python bench/precision_eval.py --demo demo-quick --work /tmp/vlkd-precision [--seeds 0] [--precisions int8]
Prints markdown rows (docs/benchmarks.md, "Inference precision: int8 and bf16 students").
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import time
from pathlib import Path

from commands import vlkd_argv, vlkd_env


def student_commands(demo: Path, seeds: list[int]) -> list[tuple[str, list[str]]]:
    """(name, argv) of the demo's student evaluations of `seeds`, in step order."""
    found = []
    for done in sorted((demo / "logs").glob("*.done")):
        argv = shlex.split(done.read_text().strip().splitlines()[0]) if done.read_text().strip() else []
        if not argv or argv[0] not in ("eval-caption", "eval-retrieval") or "--model" not in argv:
            continue
        name = Path(argv[argv.index("--model") + 1]).name
        seed = re.search(r"seed-?(\d+)$", name)
        if "student" in name and seed and int(seed.group(1)) in seeds and "--rerank-model" not in argv:
            found.append((name, argv))
    return found


def run_eval(argv: list[str], out: Path, precision: str, cwd: Path) -> tuple[dict, float]:
    """Metrics and wall seconds of one evaluation at `precision` into `out` (cached), run from `cwd` (where the
    demo ran: its commands may name paths relative to it) with the installed vlkd (PYTHONSAFEPATH: never a checkout
    that `cwd` holds)."""
    argv = list(argv)
    argv[argv.index("--out") + 1] = str(out.resolve())
    start = time.perf_counter()
    if not (out / "metrics.json").is_file():
        subprocess.run(vlkd_argv(*argv, "--precision", precision), check=True, capture_output=True, env=vlkd_env(),
                       cwd=cwd)  # fmt: skip
    return json.loads((out / "metrics.json").read_text()), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo-quick"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/vlkd-precision"))
    parser.add_argument("--seeds", default="0", help="comma-separated seeds of the students to evaluate")
    parser.add_argument("--precisions", default="int8", help="compared with fp32, comma-separated (int8, bf16)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    others = [p for p in args.precisions.split(",") if p and p != "fp32"]
    header = ["student", "metric", "demo", "fp32", *others, *(f"{p} - fp32" for p in others),
              "eval s fp32", *(f"eval s {p}" for p in others)]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|---|---|" + "---:|" * (len(header) - 2))
    ran_from = args.demo.resolve().parent  # `vlkd demo --out DIR` run from DIR's parent (as `make demo` does)
    for name, argv in student_commands(args.demo, seeds):
        demo_metrics = json.loads((ran_from / argv[argv.index("--out") + 1] / "metrics.json").read_text())
        results = {p: run_eval(argv, args.work / f"{name}-{p}", p, ran_from) for p in ("fp32", *others)}
        keys = ["CIDEr"] if argv[0] == "eval-caption" else ["i2t_r1", "t2i_r1", "rsum"]
        for key in keys:
            scale = 100.0 if key == "CIDEr" else 1.0  # CIDEr as the papers print it
            values = {p: results[p][0][key] * scale for p in results}
            cells = [name, key, f"{demo_metrics[key] * scale:.2f}", *(f"{values[p]:.2f}" for p in ("fp32", *others)),
                     *(f"{values[p] - values['fp32']:+.2f}" for p in others),
                     *(f"{results[p][1]:.1f}" for p in ("fp32", *others))]  # fmt: skip
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
