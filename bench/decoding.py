"""Caption decoding with cached keys/values against full recomputation, on the papers' shapes.

For each shape (`oscar-base` teacher 12L/768H and `minilm-l6` student 6L/384H by default), a caption model with
random weights (weights do not change the compute) and a BERT-size vocabulary (30,522 WordPiece entries: the LM
head's cost is part of every step) decodes exactly `--length` tokens (`min_length == max_length`, as
`vlkd benchmark-latency --decode-length` does, so both paths run the same number of steps) greedily and with beam
search, at each batch size, in Oscar's layout (40 caption + 30 tag positions, 10 tags, 50 regions of 2048-d
features):

- cached: `CaptionModel.generate(..., use_cache=True)` (the default): the tags and regions run once, then one token
  per hypothesis per step over the cached keys/values;
- full: `use_cache=False`, the whole 120-token sequence of every hypothesis at every step.

Both run under `torch.inference_mode()` after a discarded warm-up (a whole cached decode; one step of the full
path, whose calls take up to minutes); the time is the median of `--runs` calls (fewer for a full-recomputation
case once its calls have taken `--full-budget` seconds: the count is printed). One intra-op thread by default: on a
shared machine a second thread mostly waits for its core, and each of the cached path's small ops pays for it. The
two paths' tokens are compared on every case (they must be equal in float32). Prints one markdown table
(docs/benchmarks.md, "Incremental decoding (cached keys/values)").

Usage:  python bench/decoding.py [--presets oscar-base,minilm-l6] [--batch-sizes 1,8] [--beam-size 4] [--length 20]
        [--runs 3] [--threads 1] [--full-budget 120]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from vlkd_cli.models import build_batch, create_vl_model
from vlkd_cli.models.oscar import build_bert_tokenizer

VOCAB_SIZE, FEATURE_DIM, NUM_TAGS, NUM_REGIONS = 30522, 2048, 10, 50
LAYOUT = {"max_text_len": 40, "max_tag_len": 30, "max_regions": 50}  # Oscar's captioning layout


def tokenizer():
    """A BERT-size WordPiece tokenizer: the 5 specials and made-up words (ids only matter for the compute)."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return build_bert_tokenizer(specials + [f"w{i}" for i in range(VOCAB_SIZE - len(specials))], lowercase=True)


def images(tok, batch_size: int, seed: int = 0):
    """A seq2seq batch of `batch_size` images: 50 random 2048-d regions and 10 tags each."""
    rng = np.random.default_rng(seed)
    feats = [rng.normal(size=(NUM_REGIONS, FEATURE_DIM)).astype(np.float32) for _ in range(batch_size)]
    boxes = []
    for _ in range(batch_size):
        x1, y1 = rng.uniform(0, 300, size=(2, NUM_REGIONS))
        x2, y2 = x1 + rng.uniform(10, 300, NUM_REGIONS), y1 + rng.uniform(10, 150, NUM_REGIONS)
        boxes.append(np.stack([x1, y1, x2, y2], axis=1))
    tags = [[f"w{int(i)}" for i in rng.integers(0, 1000, NUM_TAGS)] for _ in range(batch_size)]
    return build_batch(tok, None, tags, feats, boxes, [(480, 640)] * batch_size, mask_type="seq2seq", **LAYOUT)


def timed(fn, warmup, runs: int, budget: float) -> tuple[float, int, object]:
    """Median seconds of `fn()` over up to `runs` calls after `warmup()` (stopping once `budget` s are spent), and
    the last call's result."""
    warmup()
    samples: list[float] = []
    while len(samples) < runs and sum(samples) < budget:
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), len(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="oscar-base,minilm-l6")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full-budget", type=float, default=120.0, help="seconds of timed full-recomputation calls")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tok = tokenizer()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} thread(s), torch "
          f"{torch.__version__}, CPU; load average at start {load:.1f}\n")  # fmt: skip
    print(f"| model | decoding ({args.length} tokens) | batch | full recomputation (s) | cached (s) | speed-up | "
          "same tokens |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---|")
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        model = create_vl_model(task="caption", preset=preset, tokenizer=tok, region_feature_dim=FEATURE_DIM,
                                **LAYOUT).eval()  # fmt: skip
        for beam in (1, args.beam_size):
            for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
                batch = images(tok, batch_size)

                def decode(use_cache: bool, length: int = args.length, batch=batch, beam=beam):
                    with torch.inference_mode():
                        return model.generate(batch, beam_size=beam, max_length=length, min_length=length,
                                              use_cache=use_cache)  # fmt: skip

                # Warm-up: a whole cached decode; one step of the full path (its calls take seconds to minutes).
                cached, cached_runs, cached_result = timed(lambda: decode(True), lambda: decode(True), args.runs,
                                                           float("inf"))  # fmt: skip
                full, full_runs, full_result = timed(lambda: decode(False), lambda: decode(False, 1), args.runs,
                                                     args.full_budget)  # fmt: skip
                same = "yes" if cached_result.token_ids == full_result.token_ids else "NO"
                name = "greedy" if beam == 1 else f"beam {beam}"
                runs = f" ({full_runs} run{'s' if full_runs > 1 else ''})" if full_runs != cached_runs else ""
                print(f"| {preset} | {name} | {batch_size} | {full:.2f}{runs} | {cached:.3f} | {full / cached:.1f}× "
                      f"| {same} |", flush=True)  # fmt: skip
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at the end {load:.1f}")


if __name__ == "__main__":
    main()
