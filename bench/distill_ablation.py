"""The DistillVLM ablation on demo data: the same student, data, step budget and seeds, differing only in the loss
terms — no KD; KD with the adapted teacher; KD without adaptation; attention only; NCE only.

Needs the outputs of `vlkd demo` (`make demo`) in --work: data/, regions.safetensors (student boxes),
regions-teacher.safetensors (the teacher's own boxes), teacher/ (trained on its own regions) and
teacher-adapted/ (adapted to the student's boxes). Each run validates once, at its last step (no checkpoint
selection on the validation split), with vlkd's internal CIDEr-D; mean ± std over the seeds.

Usage:  python bench/distill_ablation.py --work demo-quick [--seeds 0,1,2] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

from commands import vlkd_argv, vlkd_env

ROWS = {
    "student no KD": None,
    "student KD + adaptation": ["--loss", "task=1", "--loss", "attention_mse=10", "--loss", "token_nce=0.5",
                                "--loss", "logit_kd=1"],
    "student KD no adaptation": ["--loss", "task=1", "--loss", "attention_mse=10", "--loss", "token_nce=0.5",
                                 "--loss", "logit_kd=1", "--teacher-regions", "{work}/regions-teacher.safetensors",
                                 "--allow-misaligned"],
    "attention only (+ task), adapted": ["--loss", "task=1", "--loss", "attention_mse=10"],
    "NCE only (+ task), adapted": ["--loss", "task=1", "--loss", "token_nce=0.5"],
}  # fmt: skip


def run(name: str, extra: list[str] | None, seed: int, args: argparse.Namespace) -> float:
    work, out = args.work, args.work / "ablation" / f"{name.replace(' ', '_')}-seed{seed}"
    common = ["--regions", str(work / "regions.safetensors"), "--task", "caption",
              "--annotations", str(work / "data" / "karpathy.json"), "--split", "train", "--val-split", "val",
              "--max-steps", str(args.steps), "--eval-every", str(args.steps), "--batch-size", "32", "--lr", "5e-4",
              "--seed", str(seed), "--device", "cpu", "--out", str(out), "--overwrite"]  # fmt: skip
    if extra is None:
        command = ["finetune", "--model", "demo-student", "--features", "student", *common]
    else:
        teacher = "teacher" if "--allow-misaligned" in extra else "teacher-adapted"
        command = ["distill", "--teacher", str(work / teacher), "--student", "demo-student", *common,
                   *[a.format(work=work) for a in extra]]  # fmt: skip
    subprocess.run(vlkd_argv(*command), check=True, capture_output=True, env=vlkd_env())
    return json.loads((out / "config.json").read_text())["training"]["best_metric"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("demo-quick"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    teacher = json.loads((args.work / "teacher-adapted" / "config.json").read_text())["training"]["best_metric"]
    print(f"| model (demo-student, {args.steps} steps, batch 32, lr 5e-4; seeds {args.seeds}) | val CIDEr-D mean ± std | runs |")
    print("|---|---|---|")
    print(f"| teacher adapted (demo-teacher; reference) | {'-' if teacher is None else f'{teacher:.3f}'} | 1 |")
    for name, extra in ROWS.items():
        scores = [run(name, extra, seed, args) for seed in seeds]
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        print(f"| {name} | {statistics.mean(scores):.3f} ± {spread:.3f} | {', '.join(f'{s:.3f}' for s in scores)} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
