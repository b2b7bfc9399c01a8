"""Benchmark `extract-regions` against the bare backbone forward on the same images, and its peak memory.

Measures, side by side in one run:
  1. images/s of the bare backbones: decode + preprocess + student and teacher backbone forward (no proposals,
     no RoIAlign, no writing) with the same batching and prefetch thread as extract-regions;
  2. images/s of `vlkd extract-regions --proposals` (proposals = the ground-truth boxes) end to end;
  3. peak RSS of extract-regions on 1k and on 4k images (each in a fresh process).

Usage:  python bench/extract_regions.py --work /tmp/vlkd-bench [--student tf_efficientnet_lite0]
        [--teacher tf_efficientnet_lite2] [--image-size 128] [--threads 2]
Prints a markdown table (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from commands import vlkd_argv, vlkd_env


def make_data(work: Path, num_images: int, image_size: int) -> Path:
    data = work / f"demo-{num_images}"
    if not (data / "instances.json").is_file():
        subprocess.run(vlkd_argv("make-demo-data", "--out", data, "--num-images", num_images, "--image-size", image_size),
                       check=True, stdout=subprocess.DEVNULL, env=vlkd_env())  # fmt: skip
    proposals = data / "proposals.json"
    if not proposals.is_file():
        instances = json.loads((data / "instances.json").read_text())
        proposals.write_text(json.dumps([
            {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in instances["annotations"]
        ]))  # fmt: skip
    return data


def bare_backbones(data: Path, student: str, teacher: str, image_size: int, batch_size: int) -> float:
    """images/s of decode + preprocess + both backbone forwards."""
    import torch

    from vlkd_cli.data.batching import DecodeStats, iter_batches
    from vlkd_cli.data.image_index import resolve_images
    from vlkd_cli.vision.backbone import create_backbone

    start = time.perf_counter()  # model construction and the image index count on both sides
    refs = resolve_images(data / "images", data / "instances.json")
    nets = [create_backbone(name, seed=0).eval() for name in (student, teacher)]
    with torch.inference_mode():
        for batch in iter_batches(refs, image_size=image_size, batch_size=batch_size, skip_bad_images=False,
                                  stats=DecodeStats(skipped=[])):  # fmt: skip
            pixels = batch.pixels.contiguous(memory_format=torch.channels_last)
            for net in nets:
                net(net.preprocess(pixels))
    return len(refs) / (time.perf_counter() - start)


def extract_in_process(data: Path, out: Path, student: str, teacher: str, image_size: int, batch_size: int) -> float:
    """images/s of the extract-regions stage (same process as the bare measurement, torch already imported)."""
    from vlkd_cli.stages.extract_regions import ExtractConfig, run

    cfg = ExtractConfig(images=data / "images", out=out, teacher_backbone=teacher, student_backbone=student,
                        annotations=data / "instances.json", proposals=data / "proposals.json",
                        image_size=image_size, batch_size=batch_size, device="cpu")  # fmt: skip
    start = time.perf_counter()
    result = run(cfg)
    return result.num_images / (time.perf_counter() - start)


def extract(data: Path, out: Path, student: str, teacher: str, image_size: int, batch_size: int) -> tuple[float, float]:
    """(images/s including start-up, peak RSS in MiB) of one extract-regions run in a fresh process."""
    code = (
        "import resource, sys, time\n"
        "from vlkd_cli.cli import app\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    app(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    args = ["extract-regions", "--images", str(data / "images"), "--annotations", str(data / "instances.json"),
            "--proposals", str(data / "proposals.json"), "--student-backbone", student, "--teacher-backbone", teacher,
            "--image-size", str(image_size), "--batch-size", str(batch_size), "--device", "cpu", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "VLKD_PROGRESS": "0"}
    output = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, env=env)
    seconds, rss_kib = output.stdout.strip().splitlines()[-1].split()
    num_images = len(json.loads((data / "instances.json").read_text())["images"])
    return num_images / float(seconds), int(rss_kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vlkd-bench"))
    parser.add_argument("--student", default="tf_efficientnet_lite0")
    parser.add_argument("--teacher", default="tf_efficientnet_lite2")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    small, large = make_data(args.work, 1000, args.image_size), make_data(args.work, 4000, args.image_size)
    os.environ["VLKD_PROGRESS"] = "0"
    common = (args.student, args.teacher, args.image_size, args.batch_size)
    bare_backbones(small, *common)  # warm-up: first calls in a process are slow
    bare = bare_backbones(small, *common)
    full_1k = extract_in_process(small, args.work / "r1k.safetensors", *common)
    _, rss_1k = extract(small, args.work / "r1k.safetensors", *common)
    full_4k, rss_4k = extract(large, args.work / "r4k.safetensors", *common)
    print(f"| student / teacher backbone | {args.student} / {args.teacher} at {args.image_size} px, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads |")  # fmt: skip
    print("|---|---|")
    print(f"| bare backbones (decode + both forwards), 1k images | {bare:.1f} images/s |")
    print(f"| extract-regions --proposals, 1k images | {full_1k:.1f} images/s |")
    print(f"| regions overhead over the bare backbones | {100 * (bare / full_1k - 1):+.1f}% |")
    print(f"| extract-regions in a fresh process (start-up included), 4k images | {full_4k:.1f} images/s |")
    print(f"| peak RSS, 1k images / 4k images | {rss_1k:.0f} MiB / {rss_4k:.0f} MiB ({rss_4k / rss_1k:.2f}x) |")


if __name__ == "__main__":
    main()
