"""Retrieval evaluation at COCO 5K scale: 5,000 images × 25,000 texts (5 captions each), synthetic L2-normalised
embeddings (d=256, clustered, caption noise set so that recalls are mid-range, like a real dual encoder).

Side by side in one process, on the same embeddings:
- exact top-10 with faiss (`IndexFlatIP`, both directions) + `topk_recall`;
- the brute-force full matrix (torch matmul, (5,000, 25,000) float32) + `retrieval_recall`;
the two metric dicts must be equal (asserted). Then IVF and HNSW (calibrated nprobe / efSearch) with their R@10 as a
share of flat's. Times are medians over `--repeats`, wall clock, in this process (threads as configured: torch and
faiss each use all cores).

Usage:  python bench/eval_retrieval.py [--images 5000] [--captions 5] [--dim 256] [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import faiss
import numpy as np
import torch

from vlkd_cli.eval.gallery import build_index, search, search_index, topk_recall, tune
from vlkd_cli.eval.retrieval import retrieval_recall

KEYS = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"]


def embeddings(num_images: int, captions: int, dim: int, seed: int, noise: float):
    """Images (I, D) around 200 cluster centres; `captions` noisy copies each as texts (I·C, D); both normalised."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, dim))
    images = centres[rng.integers(200, size=num_images)] + 0.6 * rng.standard_normal((num_images, dim))
    scale = np.linalg.norm(images, axis=1, keepdims=True) / np.sqrt(dim)  # noise relative to the image's norm
    texts = np.repeat(images, captions, axis=0)
    texts += noise * np.repeat(scale, captions, axis=0) * rng.standard_normal(texts.shape)

    def unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    return unit(images), unit(texts), np.repeat(np.arange(num_images), captions)


def timed(fn, repeats: int):
    """(median seconds, last result)."""
    samples, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def brute_force(images: np.ndarray, texts: np.ndarray, text_rows: np.ndarray) -> tuple[dict, float]:
    start = time.perf_counter()
    scores = (torch.from_numpy(images) @ torch.from_numpy(texts).T).numpy()  # (I, T) float32
    matmul = time.perf_counter() - start
    return retrieval_recall(scores, text_rows), matmul


def flat_topk(images: np.ndarray, texts: np.ndarray, text_rows: np.ndarray) -> tuple[dict, float]:
    start = time.perf_counter()
    i2t, t2i = search(images, texts, 10), search(texts, images, 10)  # (I, 10), (T, 10)
    searching = time.perf_counter() - start
    return topk_recall(*i2t, *t2i, text_rows), searching


def approximate(kind: str, images: np.ndarray, texts: np.ndarray, text_rows: np.ndarray, seed: int) -> dict:
    start = time.perf_counter()
    text_index, image_index = build_index(texts, kind, seed=seed), build_index(images, kind, seed=seed)
    built = time.perf_counter()
    i2t_tuned, t2i_tuned = (
        tune(text_index, images, texts, 10, seed=seed),
        tune(image_index, texts, images, 10, seed=seed),
    )
    tuned = time.perf_counter()
    i2t, t2i = search_index(text_index, images, 10), search_index(image_index, texts, 10)
    searched = time.perf_counter()
    setting = "nprobe" if kind == "ivf" else "ef_search"
    return {
        "metrics": topk_recall(*i2t, *t2i, text_rows),
        "build": built - start,
        "tune": tuned - built,
        "search": searched - tuned,
        "settings": f"{setting} {getattr(i2t_tuned, setting)} / {getattr(t2i_tuned, setting)}"
        + (f", nlist {text_index.nlist} / {image_index.nlist}" if kind == "ivf" else ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--captions", type=int, default=5)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--noise", type=float, default=4.5, help="caption noise relative to the image norm")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    images, texts, text_rows = embeddings(args.images, args.captions, args.dim, args.seed, args.noise)
    print(f"{len(images):,} images × {len(texts):,} texts, d={args.dim}; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), faiss {faiss.__version__} "
          f"({faiss.omp_get_max_threads()} threads)")  # fmt: skip

    brute_time, (full, matmul) = timed(lambda: brute_force(images, texts, text_rows), args.repeats)
    flat_time, (topk, searching) = timed(lambda: flat_topk(images, texts, text_rows), args.repeats)
    differing = {key: (full[key], topk[key]) for key in full if full[key] != topk[key]}
    assert not differing, f"flat top-10 and the full matrix disagree: {differing}"
    print("recalls (equal both ways):", ", ".join(f"{key} {full[key]:.2f}" for key in KEYS),
          f"| rsum {full['rsum']:.2f} | ties {full['i2t_ties']:.0f} / {full['t2i_ties']:.0f}")  # fmt: skip
    print(f"brute force: {brute_time:.2f} s (matmul {matmul:.2f} s + retrieval_recall {brute_time - matmul:.2f} s)")
    print(f"faiss flat:  {flat_time:.2f} s (search {searching:.2f} s + topk_recall {flat_time - searching:.3f} s)")
    print(f"ratio brute / flat: {brute_time / flat_time:.2f}")
    print()
    print("| gallery | method | time (s) | i2t R@1/5/10 | t2i R@1/5/10 | R@10 share of flat (i2t / t2i) | settings |")
    print("|---|---|---|---|---|---|---|")
    size = f"{len(images):,} × {len(texts):,}, d={args.dim}"

    def row(method: str, seconds: str, metrics: dict, settings: str) -> None:
        i2t = " / ".join(f"{metrics[f'i2t_r{k}']:.1f}" for k in (1, 5, 10))
        t2i = " / ".join(f"{metrics[f't2i_r{k}']:.1f}" for k in (1, 5, 10))
        share = f"{metrics['i2t_r10'] / topk['i2t_r10']:.3f} / {metrics['t2i_r10'] / topk['t2i_r10']:.3f}"
        print(f"| {size} | {method} | {seconds} | {i2t} | {t2i} | {share} | {settings} |")

    row("torch full matrix + `retrieval_recall`", f"{brute_time:.2f}", full, "exact")
    row("faiss flat top-10 + `topk_recall`", f"{flat_time:.2f}", topk, f"exact; {brute_time / flat_time:.2f}× faster")
    for kind in ("ivf", "hnsw"):
        result = approximate(kind, images, texts, text_rows, args.seed)
        seconds = f"build {result['build']:.2f} + tune {result['tune']:.2f} + search {result['search']:.2f}"
        row(f"faiss {kind} top-10 + `topk_recall`", seconds, result["metrics"], result["settings"])


if __name__ == "__main__":
    main()
