"""DCD on demo data, measured as the paper sets it up: a retrieval teacher stronger than its students, a smaller
cross-encoder student started from the teacher's layers (the released `useSucc` setting) and a dual-encoder
student, each trained without and with DCD from the same start, data, steps and seeds (they differ only in their
`--loss` terms). Recall on the Karpathy test split (5 folds, the COCO 1K protocol) and the time to rank it.

Everything is built in --work from scratch (each step is skipped when its output exists, so a rerun resumes):

  data/                 400 generated scenes at 128 px, 100 of them the test split (make-demo-data)
  regions.safetensors   the ground-truth boxes with Lite0 (student) and Lite2 (teacher) features
  teacher-caption/      demo-teacher (4L/256H) trained to caption, 300 steps: the VL pre-training stand-in
  retriever/            a dual encoder (demo-student), 100 steps: it mines the teacher's hard negatives and
                        draws the DCD pools of the cross students (a fixed retriever)
  teacher/              the caption teacher fine-tuned as a cross-encoder: the ranking objective over
                        --teacher-negatives captions mined by the retriever (ALBEF), --teacher-steps steps
  seed-S/               per seed: a cross student and a dual student, both demo-distil (2L/256H) from the
                        teacher's layers 0 and 3 and reading the teacher's features (the released setting:
                        DCD compresses the transformer), without and with DCD, and their evaluations

Usage:  python bench/dcd_retrieval.py --work /tmp/dcd-bench [--seeds 0,1,2] [--steps 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from commands import vlkd_once

KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")
ROWS = ("teacher", "cross student no DCD", "cross student DCD", "dual student no DCD", "dual student DCD",
        "two-stage (dual DCD top-16, teacher re-ranks)")  # fmt: skip


def prepare(work: Path, args: argparse.Namespace) -> dict[str, Path]:
    """Data, regions, the caption teacher, the retriever and the retrieval teacher (seed 0)."""
    data, regions, gt = work / "data", work / "regions.safetensors", work / "gt.json"
    vlkd_once(data / "karpathy.json", "make-demo-data", "--out", data, "--num-images", 400, "--test-images", 100)
    if not gt.is_file():
        from vlkd_cli.demo.plan import write_gt_proposals

        write_gt_proposals(data / "instances.json", gt)
    vlkd_once(regions, "extract-regions", "--images", data / "images", "--annotations", data / "instances.json",
         "--proposals", gt, "--student-backbone", "tf_efficientnet_lite0", "--teacher-backbone",
         "tf_efficientnet_lite2", "--pretrained", "--image-size", 128, "--out", regions)  # fmt: skip
    train = ["--regions", regions, "--annotations", data / "karpathy.json", "--split", "train", "--lr", "5e-4",
             "--seed", 0, "--device", "cpu", "--overwrite"]  # fmt: skip
    caption = vlkd_once(work / "teacher-caption", "finetune", "--task", "caption", "--model", "demo-teacher",
                   "--features", "teacher", "--max-steps", 300, "--batch-size", 32, *train, "--out",
                   work / "teacher-caption")  # fmt: skip
    retriever = vlkd_once(work / "retriever", "finetune", "--task", "retrieval", "--arch", "dual", "--model",
                     "demo-student", "--features", "student", "--max-steps", 100, "--batch-size", 32, *train,
                     "--out", work / "retriever")  # fmt: skip
    teacher = vlkd_once(work / "teacher", "finetune", "--task", "retrieval", "--model", caption, "--features", "teacher",
                   "--itm-negatives", args.teacher_negatives, "--itm-miner", retriever, "--max-steps",
                   args.teacher_steps, "--batch-size", 16, *train, "--out", work / "teacher")  # fmt: skip
    return {"data": data, "regions": regions, "retriever": retriever, "teacher": teacher}


def students(work: Path, inputs: dict[str, Path], args: argparse.Namespace, seed: int) -> dict[str, Path]:
    """The four students of one seed: each DCD student and its twin share init, data, steps and seed."""
    root = work / f"seed-{seed}"
    common = ["distill", "--method", "dcd", "--task", "retrieval", "--teacher", inputs["teacher"], "--student",
              "demo-distil", "--init-from-teacher", "uniform", "--regions", inputs["regions"], "--annotations",
              inputs["data"] / "karpathy.json", "--split", "train", "--max-steps", args.steps, "--lr", "5e-4",
              "--seed", seed, "--dcd-pool", args.pool, "--dcd-k", args.k, "--student-features", "teacher", "--device",
              "cpu", "--overwrite"]  # fmt: skip
    dcd = ["--loss", "dcd=1", "--loss", "task=1"]
    cross = ["--arch", "cross", "--batch-size", 16, "--dcd-pool-source", inputs["retriever"]]
    dual = ["--arch", "dual", "--batch-size", 32, "--dcd-pool-source", "student", "--dcd-pool-refresh", 25]
    out = {}
    for name, extra in (("cross student no DCD", [*cross, "--loss", "task=1"]), ("cross student DCD", [*cross, *dcd]),
                        ("dual student no DCD", [*dual, "--loss", "task=1"]), ("dual student DCD", [*dual, *dcd])):
        directory = root / name.replace(" ", "-")
        out[name] = vlkd_once(directory, *common, *extra, "--out", directory)
    return out


def evaluate(work: Path, inputs: dict[str, Path], model: Path, name: str, *extra: object) -> dict[str, float]:
    """Recall (5 folds) and the seconds the command took to rank the test gallery."""
    out = work / "eval" / f"{model.parent.name}-{name}"
    start = time.perf_counter()
    vlkd_once(out, "eval-retrieval", "--model", model, "--regions", inputs["regions"], "--annotations",
         inputs["data"] / "karpathy.json", "--split", "test", "--folds", 5, "--device", "cpu", *extra, "--out", out)  # fmt: skip
    seconds = time.perf_counter() - start
    timing = out / "seconds.json"
    if not timing.is_file():  # the first (timed) run's seconds
        timing.write_text(json.dumps(seconds))
    return {**json.loads((out / "metrics.json").read_text()), "seconds": json.loads(timing.read_text())}


def row(name: str, runs: list[dict[str, float]]) -> str:
    def cell(key: str) -> str:
        values = [r[key] for r in runs]
        spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
        return f"{statistics.mean(values):.1f}{spread}"

    return f"| {name} | {' | '.join(cell(k) for k in KEYS)} | {statistics.median(r['seconds'] for r in runs):.1f} | {len(runs)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dcd-bench"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=100, help="steps of every student")
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--teacher-steps", type=int, default=150)
    parser.add_argument("--teacher-negatives", type=int, default=7)
    args = parser.parse_args()
    work = args.work.resolve()
    inputs = prepare(work, args)
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in ROWS}
    results["teacher"].append(evaluate(work, inputs, inputs["teacher"], "teacher"))
    for seed in seeds:
        models = students(work, inputs, args, seed)
        for name, model in models.items():
            results[name].append(evaluate(work, inputs, model, name.replace(" ", "-")))
        results[ROWS[-1]].append(evaluate(work, inputs, models["dual student DCD"], "two-stage", "--rerank-model",
                                          inputs["teacher"], "--rerank-k", 16))  # fmt: skip
    print(f"400 demo scenes, Karpathy test = 100 images x 500 captions in 5 folds; students {args.steps} steps, "
          f"seeds {args.seeds}; DCD pool {args.pool}, k {args.k}; teacher {args.teacher_steps} steps over "
          f"{args.teacher_negatives} mined negatives")  # fmt: skip
    print(f"| model | {' | '.join(KEYS)} | rank s | runs |")
    print("|---|" + "---|" * (len(KEYS) + 2))
    for name in ROWS:
        print(row(name, results[name]))
    (work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
