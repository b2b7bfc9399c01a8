"""The latency numbers of `vlkd benchmark-latency` on demo-size models, teacher vs student.

1. End-to-end caption latency at batch 1, student / teacher: image decode -> detector -> backbone + RoI features ->
   transformer -> exactly 20 greedy decoding steps. Teacher = `demo-teacher` (4L/256H) reading
   tf_efficientnet_lite2 features; student = `demo-student` (2L/128H) reading the features of its detector's own
   tf_efficientnet_lite0 backbone. Both run the same detector (the teacher is adapted to the student's proposals).
2. Full-gallery retrieval at 1k images x 5k texts: the teacher cross-encoder (demo-teacher ITM head, every pair;
   extrapolated linearly from a timed sample of `--max-pairs` pairs) vs the dual student (demo-student dual
   encoder + faiss flat search), each in its own run; with `--two-stage`, also the two-stage ranking (dual top-16
   re-scored by the cross-encoder: ~96k cross-encoder pairs, minutes per iteration on a CPU; 1 iteration).

Weights: the models are trained for 1 step and the detector for 2 (untrained for all purposes; weights do not
change the compute), and the backbones are randomly initialised (timing only). Images: make-demo-data scenes.

Usage:  python bench/latency.py --work /tmp/vlkd-latency [--image-size 448] [--threads 1] [--iters 20] [--two-stage]
Prints markdown rows (paste into docs/benchmarks.md,
"Inference latency, teacher vs student (`bench/latency.py`, `vlkd benchmark-latency`)").
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from commands import vlkd_argv, vlkd_env

STUDENT_BACKBONE, TEACHER_BACKBONE = "tf_efficientnet_lite0", "tf_efficientnet_lite2"


def vlkd(*args) -> None:
    """Run one vlkd command in a fresh process (quiet unless it fails)."""
    command = vlkd_argv(*args)
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=vlkd_env())
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stdout}\n{done.stderr}")


def prepare(work: Path, image_size: int) -> dict[str, Path]:
    """Demo data, a detector, regions and four models (cached in `work`)."""
    data, detector, regions = work / "data", work / "detector", work / "regions.safetensors"
    if not (data / "karpathy.json").is_file():
        vlkd("make-demo-data", "--out", data, "--num-images", 40, "--image-size", image_size)
    if not (detector / "model.safetensors").is_file():
        vlkd("train-detector", "--images", data / "images", "--instances", data / "instances.json", "--backbone",
             STUDENT_BACKBONE, "--image-size", image_size, "--max-steps", 2, "--batch-size", 4, "--device", "cpu",
             "--out", detector)  # fmt: skip
    if not regions.is_file():
        vlkd("extract-regions", "--images", data / "images", "--detector", detector, "--teacher-backbone",
             TEACHER_BACKBONE, "--image-size", image_size, "--device", "cpu", "--out", regions)  # fmt: skip
    models = {}
    for name, preset, side, task, arch in [
        ("teacher-caption", "demo-teacher", "teacher", "caption", "cross"),
        ("student-caption", "demo-student", "student", "caption", "cross"),
        ("teacher-cross", "demo-teacher", "teacher", "retrieval", "cross"),
        ("student-dual", "demo-student", "student", "retrieval", "dual"),
    ]:
        models[name] = work / name
        if not (models[name] / "model.safetensors").is_file():
            vlkd("finetune", "--task", task, "--arch", arch, "--model", preset, "--regions", regions, "--features",
                 side, "--annotations", data / "karpathy.json", "--split", "train", "--max-steps", 1,
                 "--batch-size", 4, "--device", "cpu", "--out", models[name])  # fmt: skip
    return {"data": data, "detector": detector, **models}


def benchmark(out: Path, paths: dict[str, Path], models: list[str], *extra) -> dict:
    vlkd("benchmark-latency", *[a for m in models for a in ("--model", paths[m])], "--images", paths["data"] / "images",
         "--detector", paths["detector"], "--device", "cpu", "--out", out, *extra)  # fmt: skip
    return json.loads((out / "latency.json").read_text())


def medians(document: dict, model_index: int, batch_size: int) -> dict[str, dict]:
    model = document["models"][model_index]["model"]
    return {r["stage"]: r for r in document["results"] if r["model"] == model and r["batch_size"] == batch_size}


def _ms(row: dict | None) -> str:
    return "skipped" if row is None or row["median_ms"] is None else f"{row['median_ms']:.1f}"


def caption_rows(document: dict) -> None:
    teacher, student = medians(document, 0, 1), medians(document, 1, 1)
    info = document["models"]
    print(f"| caption, batch 1, 20 greedy steps (median ms) | teacher: demo-teacher + {info[0]['backbone']} "
          f"({info[0]['parameters']['total']:,} params) | student: demo-student + {info[1]['backbone']} "
          f"({info[1]['parameters']['total']:,} params) | student / teacher |")  # fmt: skip
    print("|---|---:|---:|---:|")
    for stage in ("decode", "detector", "backbone_roi", "inputs", "transformer", "head", "total"):
        ratio = student[stage].get("ratio_to_reference")
        print(f"| {stage} | {_ms(teacher[stage])} | {_ms(student[stage])} | "
              f"{'-' if ratio is None else f'{ratio:.2f}'} |")  # fmt: skip
    print(f"| peak RSS (MiB) | {info[0]['peak_rss_mib']:.0f} | {info[1]['peak_rss_mib']:.0f} | |")


def total_ms(document: dict, stage: str = "total") -> float:
    (row,) = [r for r in document["results"] if r["stage"] == stage]
    return row["median_ms"]


def retrieval_rows(cross: dict, dual: dict, two_stage: dict | None) -> None:
    """Cross-encoder vs dual encoder (separate runs), and optionally the two-stage run."""
    (scored,) = [r for r in cross["results"] if r["stage"] == "score_pairs"]
    n, m, pairs = scored["gallery_images"], scored["gallery_texts"], scored.get("extrapolated_from_pairs")
    base = total_ms(cross)
    print(f"| retrieval, {n} images x {m} texts (median s) | time | speed-up over the cross-encoder |")
    print("|---|---:|---:|")
    note = f" (extrapolated from {pairs} timed pairs)" if pairs else ""
    print(f"| teacher cross-encoder (demo-teacher ITM), all pairs{note} | {base / 1000:.1f} | 1 |")
    dual_ms = total_ms(dual)
    print(f"| dual student (demo-student): embed + faiss flat | {dual_ms / 1000:.2f} | {base / dual_ms:,.0f}x |")
    if two_stage is not None:
        two = total_ms(two_stage, "two_stage_total")
        print(f"| two-stage: dual top-16 + cross-encoder re-rank | {two / 1000:.1f} | {base / two:,.0f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/vlkd-latency"))
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--max-pairs", type=int, default=2000)
    parser.add_argument("--two-stage", action="store_true", help="also time the two-stage ranking (slow)")
    args = parser.parse_args()
    paths = prepare(args.work, args.image_size)
    common = ["--threads", args.threads, "--iters", args.iters]
    caption = benchmark(args.work / "latency-caption", paths, ["teacher-caption", "student-caption"],
                        "--batch-sizes", "1", "--warmup", 5, "--decode-length", 20, *common)  # fmt: skip
    env = caption["environment"]
    print(f"Environment: {env['cpu']}, {env['threads']} thread(s), torch {env['torch']}, device {env['device']}.\n")
    caption_rows(caption)
    print()
    gallery = ["--gallery-images", 1000, "--gallery-texts", 5000, "--batch-sizes", 64, "--threads", args.threads]
    cross = benchmark(args.work / "latency-cross", paths, ["teacher-cross"], *gallery, "--max-pairs",
                      args.max_pairs, "--warmup", 1, "--iters", 3)  # fmt: skip
    dual = benchmark(args.work / "latency-dual", paths, ["student-dual"], *gallery, "--warmup", 1, "--iters", 3)
    two_stage = None
    if args.two_stage:  # ~96k cross-encoder pairs per iteration: minutes per iteration on a CPU
        two_stage = benchmark(args.work / "latency-two-stage", paths, ["student-dual", "teacher-cross"], *gallery,
                              "--max-pairs", args.max_pairs, "--warmup", 0, "--iters", 1)  # fmt: skip
    retrieval_rows(cross, dual, two_stage)


if __name__ == "__main__":
    main()
