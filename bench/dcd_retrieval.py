"""DCD on demo data: the same dual-encoder student, data, step budget and seeds. A first stage trains it with its
in-batch contrastive loss; a second stage of as many steps continues from it without DCD (the same loss) or with
DCD (the same loss + the DCD loss), as `vlkd demo` does. Next to them: the teacher cross-encoder and two-stage
retrieval (dual top-K re-ranked by the teacher). R@1/5/10 on the Karpathy test split and the time to rank it.

Needs in --work what `vlkd demo --quick --out DIR` leaves there: data/ (make-demo-data), regions-teacher.safetensors
(student and teacher features on the same boxes) and teacher-itm/ (a retrieval cross-encoder on teacher features).
Each student is evaluated once, after its last step (no checkpoint selection).

Usage:  python bench/dcd_retrieval.py --work demo-quick [--seeds 0,1,2] [--steps 100] [--pool 8] [--k 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.demo.plan import DCD_LOSSES, QUICK
from vlkd_cli.tasks.inference import load_inference_model
from vlkd_cli.tasks.ranking import cross_scores, dual_embeddings, load_gallery, pair_scorer, rank_dual, rank_matrix

KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")


def vlkd(*command: str) -> None:
    subprocess.run([sys.executable, "-m", "vlkd_cli", *command], check=True, capture_output=True,
                   env={**os.environ, "VLKD_PROGRESS": "0"})  # fmt: skip


def train_student(args: argparse.Namespace, seed: int, dcd: bool) -> Path:
    """The second stage (without or with DCD) from the same first stage, as `vlkd demo` trains them."""
    work, bench = args.work, args.work / "dcd-bench"

    def common(out: Path) -> list[str]:
        return ["--regions", str(work / "regions-teacher.safetensors"), "--task", "retrieval", "--arch", "dual",
                "--annotations", str(work / "data" / "karpathy.json"), "--split", "train", "--max-steps",
                str(args.steps), "--batch-size", "32", "--lr", "5e-4", "--seed", str(seed), "--device", "cpu",
                "--out", str(out), "--overwrite"]  # fmt: skip

    first, out = bench / f"first-stage-seed{seed}", bench / f"{'dcd' if dcd else 'no-dcd'}-seed{seed}"
    if not (first / "model.safetensors").is_file():
        vlkd("finetune", "--model", "demo-student", "--features", "student", *common(first))
    if dcd:
        vlkd("distill", "--method", "dcd", "--teacher", str(work / "teacher-itm"), "--student", str(first),
             *DCD_LOSSES, "--dcd-pool", str(args.pool), "--dcd-k", str(args.k), *common(out))  # fmt: skip
    else:
        vlkd("finetune", "--model", str(first), "--features", "student", *common(out))
    return out


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def evaluate(args, regions, gallery, model_dir: Path, teacher=None) -> tuple[dict[str, float], float]:
    """Recall on the test gallery and the seconds to rank it (embedding + search [+ re-ranking])."""
    loaded = load_inference_model(model_dir, regions, tasks=("retrieval",), device=torch.device("cpu"))
    if not loaded.is_dual:
        matrix, seconds = timed(cross_scores, loaded, gallery, 64)
        return rank_matrix(matrix, gallery.image_ids, gallery.text_image_ids).metrics, seconds
    start = time.perf_counter()
    image_emb, text_emb = dual_embeddings(loaded, gallery, 64)
    reranker = pair_scorer(teacher, gallery, 64) if teacher is not None else None
    ranking = rank_dual(gallery, image_emb, text_emb, rerank_k=args.rerank_k, reranker=reranker)
    return ranking.metrics, time.perf_counter() - start


def row(name: str, runs: list[tuple[dict[str, float], float]]) -> str:
    def cell(key: str) -> str:
        values = [m[key] for m, _ in runs]
        spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
        return f"{statistics.mean(values):.1f}{spread}"

    seconds = statistics.median(s for _, s in runs)
    return f"| {name} | {' | '.join(cell(k) for k in KEYS)} | {seconds:.2f} | {len(runs)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("demo-quick"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=QUICK.dual_steps)
    parser.add_argument("--pool", type=int, default=QUICK.dcd_pool)
    parser.add_argument("--k", type=int, default=QUICK.dcd_k)
    parser.add_argument("--rerank-k", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    seeds = [int(s) for s in args.seeds.split(",")]
    regions = Regions(args.work / "regions-teacher.safetensors")
    gallery = load_gallery(args.work / "data" / "karpathy.json", None, regions)
    teacher = load_inference_model(args.work / "teacher-itm", regions, tasks=("retrieval",), device=torch.device("cpu"))
    print(f"gallery: {len(gallery.image_ids)} test images x {len(gallery.texts)} captions; "
          f"students: demo-student dual encoder, {args.steps} + {args.steps} steps, batch 32, lr 5e-4, "
          f"seeds {args.seeds}; DCD pool {args.pool}, k {args.k}")  # fmt: skip
    print(f"| model | {' | '.join(KEYS)} | gallery s | runs |")
    print("|---|" + "---|" * (len(KEYS) + 2))
    print(row("teacher (cross-encoder)", [evaluate(args, regions, gallery, args.work / "teacher-itm")]), flush=True)
    plain = [evaluate(args, regions, gallery, train_student(args, s, dcd=False)) for s in seeds]
    print(row("dual student no DCD", plain), flush=True)
    dcd_dirs = [train_student(args, s, dcd=True) for s in seeds]
    print(row("dual student DCD", [evaluate(args, regions, gallery, d) for d in dcd_dirs]), flush=True)
    print(row(f"two-stage (DCD top-{args.rerank_k} + teacher)", [evaluate(args, regions, gallery, d, teacher)
                                                                   for d in dcd_dirs]), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
