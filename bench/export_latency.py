"""Latency of the exported inference graphs (`vlkd export --to torchscript|onnx`) against eager PyTorch.

For each student shape (`demo-student` 2L/128H and `minilm-l6` 6L/384H by default) and each graph (VQA answer
logits, ITM match logit, one caption decoding step, the dual encoder's image and text towers), a model directory is
written (random weights: weights do not change the compute), exported with `vlkd_cli.stages.export.run`, and the
same inputs (vlkd's layout: 40 caption + 20 tag tokens, 50 regions of `--feature-dim` features; batch 1 and 8) are
timed through

- eager: the vlkd model's own inference path (`model.vl(...)` + head, `encode_image`, `encode_text`),
- torchscript: the traced graph loaded with `torch.jit.load`,
- onnxruntime: the ONNX graph on onnxruntime's CPU provider (only when onnx, onnxscript and onnxruntime are
  importable; otherwise the column says so),

each under `torch.no_grad()`, `--warmup` discarded calls then the median of `--iters` calls (`time.perf_counter`),
with `--threads` intra-op threads for torch and onnxruntime alike. Before timing, every exported output is checked
against eager (max abs difference, printed). Prints one markdown table (docs/benchmarks.md,
"Exported inference graphs (`bench/export_latency.py`)").

Usage:  python bench/export_latency.py [--presets demo-student,minilm-l6] [--threads 1] [--iters 30] [--work DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from timing import median_seconds

from vlkd_cli.artifacts.io import build_metadata
from vlkd_cli.export.graph import graph_specs
from vlkd_cli.export.source import load_export_source
from vlkd_cli.models.factory import create_vl_model
from vlkd_cli.models.tokenizer import train_wordpiece_tokenizer
from vlkd_cli.stages.export import ExportConfig, run
from vlkd_cli.tasks.finetune import write_model_dir

TASKS = (("vqa", "cross"), ("retrieval", "cross"), ("caption", "cross"), ("retrieval", "dual"))
SUFFIX = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}


def synthetic_tokenizer(vocab_size: int):
    """A WordPiece tokenizer of about `vocab_size` tokens (the LM head's width is what matters for timing)."""
    words = [f"w{chr(97 + i % 26)}{i:05d}" for i in range(vocab_size)]
    return train_wordpiece_tokenizer(words + ["a photo of two dogs on the grass near a table"], vocab_size=vocab_size)


def write_model(root: Path, preset: str, task: str, arch: str, tokenizer, feature_dim: int) -> Path:
    """A model directory (random init) as `vlkd finetune` writes it."""
    answers = [f"answer {i}" for i in range(3129)] if task == "vqa" else None  # VQA v2's usual vocabulary size
    model = create_vl_model(task=task, arch=arch, preset=preset, tokenizer=tokenizer, region_feature_dim=feature_dim,
                            answers=answers, max_text_len=40, max_tag_len=20, max_regions=50)  # fmt: skip
    config = {**model.config, "features": "student", "use_tags": True, "vlkd_kind": "model", "vlkd_schema_version": 1}
    out = root / f"{preset}-{task}-{arch}"
    write_model_dir(out, config, model.state_dict(), build_metadata("model", command="bench", config=config), tokenizer)
    return out


def median_ms(fn: Callable[[], object], warmup: int, iters: int) -> float:
    """Median wall time of `fn()` in milliseconds under `torch.no_grad()`, after `warmup` discarded calls."""
    with torch.no_grad():
        return median_seconds(fn, warmup, iters) * 1e3


def onnx_available() -> bool:
    return all(importlib.util.find_spec(p) is not None for p in ("onnx", "onnxscript", "onnxruntime"))


def load_runner(path: Path, fmt: str, threads: int) -> Callable[..., torch.Tensor]:
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.load(str(path))
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda *t: torch.from_numpy(session.run(None, {n: x.numpy() for n, x in zip(names, t, strict=True)})[0])


def bench_model(model_dir: Path, work: Path, formats: list[str], args) -> list[dict]:
    """Rows {preset, graph, batch, eager, <format>..., diff} of one model directory."""
    exports = {}
    for fmt in formats:
        exports[fmt] = work / f"{model_dir.name}-{fmt}"
        run(ExportConfig(model=model_dir, to=fmt, out=exports[fmt], batch_size=1))
    source = load_export_source(model_dir)
    from vlkd_cli.models.tokenizer import load_tokenizer

    rows = []
    for spec in graph_specs(source.model, load_tokenizer(model_dir)):
        runners = {fmt: load_runner(exports[fmt] / f"{spec.name}{SUFFIX[fmt]}", fmt, args.threads) for fmt in formats}
        for batch in args.batch_sizes:
            inputs = spec.inputs(batch)
            with torch.no_grad():
                reference = spec.eager(*inputs)
                diff = max(float((r(*inputs) - reference).abs().max()) for r in runners.values())
            row = {"model": model_dir.name, "graph": spec.name, "batch": batch, "diff": diff,
                   "eager": median_ms(lambda f=spec.eager, x=inputs: f(*x), args.warmup, args.iters)}  # fmt: skip
            for fmt, runner in runners.items():
                row[fmt] = median_ms(lambda r=runner, x=inputs: r(*x), args.warmup, args.iters)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def markdown(rows: list[dict], formats: list[str], args) -> str:
    onnx_note = "" if "onnx" in formats else " (onnxruntime: not installed here)"
    head = (
        ["model", "graph", "batch", "eager ms"] + [f"{f} ms" for f in formats] + ["torchscript speed-up", "max |diff|"]
    )
    lines = [
        (
            f"Threads {args.threads}, median of {args.iters} calls after {args.warmup} warm-up, "
            f"torch {torch.__version__}{onnx_note}."
        ),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        cells = [r["model"], r["graph"], str(r["batch"]), f"{r['eager']:.2f}"] + [f"{r[f]:.2f}" for f in formats]
        cells += [f"{r['eager'] / r['torchscript']:.2f}x", f"{r['diff']:.1e}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="demo-student,minilm-l6")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--feature-dim", type=int, default=1280, help="region feature size (tf_efficientnet_lite0)")
    parser.add_argument("--vocab-size", type=int, default=30522, help="tokenizer size: the caption LM head's width")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--work", type=Path, default=None, help="where the model dirs and exports go (default: temp)")
    args = parser.parse_args()
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    formats = ["torchscript"] + (["onnx"] if onnx_available() else [])
    work = args.work or Path(tempfile.mkdtemp(prefix="vlkd-export-latency-"))
    tokenizer = synthetic_tokenizer(args.vocab_size)
    rows = []
    for preset in args.presets.split(","):
        for task, arch in TASKS:
            rows += bench_model(write_model(work, preset, task, arch, tokenizer, args.feature_dim), work, formats, args)
    print()
    print(markdown(rows, formats, args))


if __name__ == "__main__":
    main()
