"""Training throughput of demo-student vs demo-teacher, and the share of step time spent loading data.

Runs `vlkd finetune --task caption` for a fixed number of steps with each preset on the same regions and reads
`samples_per_s` and `data_share` from their `log.jsonl` (medians over the logged steps, first steps skipped
as warm-up).

Usage:  python bench/train_throughput.py --regions demo-run/regions.safetensors \
            --annotations demo-run/data/karpathy.json [--steps 60] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from commands import vlkd_argv, vlkd_env


def measure(preset: str, args: argparse.Namespace, work: Path) -> dict[str, float]:
    out = work / preset
    command = vlkd_argv("finetune", "--task", "caption", "--model", preset, "--regions", args.regions, "--features",
                        "teacher", "--annotations", args.annotations, "--split", "train", "--max-steps", args.steps,
                        "--batch-size", args.batch_size, "--log-every", 1, "--device", "cpu", "--out", out,
                        "--overwrite")  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, env=vlkd_env())
    entries = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steady = [e for e in entries if "samples_per_s" in e][args.warmup :]
    return {
        "samples_per_s": statistics.median(e["samples_per_s"] for e in steady),
        "data_share": statistics.median(e["data_share"] for e in steady),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regions", type=Path, required=True)
    parser.add_argument("--annotations", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {preset: measure(preset, args, Path(tmp)) for preset in ("demo-teacher", "demo-student")}
    teacher, student = results["demo-teacher"], results["demo-student"]
    print(f"| model | samples/s (batch {args.batch_size}) | data loading share of step time |")
    print("|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['samples_per_s']:.1f} | {100 * r['data_share']:.1f} % |")
    print(f"| student / teacher | {student['samples_per_s'] / teacher['samples_per_s']:.2f}x | |")


if __name__ == "__main__":
    main()
