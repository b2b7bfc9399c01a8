"""Tiny deterministic inputs for the model tests: a caption tokenizer, region sets and batches."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from vlkd_cli.models import build_batch, train_wordpiece_tokenizer

CAPTIONS = [
    "a red cube left of a blue sphere",
    "two green cylinders on a table",
    "a small yellow sphere behind the red cube",
    "three blue cubes and one green sphere",
    "the purple cylinder is next to a gray cube",
] * 4
TAGS = ["cube", "sphere", "cylinder", "table", "traffic light"]
FEATURE_DIM = 8
LAYOUT = {"max_text_len": 10, "max_tag_len": 5, "max_regions": 4}


@lru_cache(maxsize=1)
def tokenizer():
    """A WordPiece tokenizer trained on the toy captions ('traffic light' as one extra token)."""
    return train_wordpiece_tokenizer(CAPTIONS, vocab_size=200, extra_tokens=["traffic light"])


def regions(num: list[int], seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[int, int]]]:
    """Random features (n_i, 8), boxes inside a 48 x 64 image, and the image sizes."""
    rng = np.random.default_rng(seed)
    feats = [rng.normal(size=(n, FEATURE_DIM)).astype(np.float32) for n in num]
    boxes = []
    for n in num:
        x1, y1 = rng.uniform(0, 30, size=(2, n))
        boxes.append(np.stack([x1, y1, x1 + rng.uniform(1, 30, n), y1 + rng.uniform(1, 15, n)], axis=1))
    return feats, boxes, [(48, 64)] * len(num)


def batch(
    texts: list[str] | None = None,
    tags: list[list[str]] | None = None,
    num_regions: list[int] | None = None,
    *,
    mask_type: str = "full",
    seed: int = 0,
    **layout,
):
    """A VLBatch of the toy layout (3 rows by default: 3, 6 (> max_regions) and 0 regions)."""
    texts = CAPTIONS[:3] if texts is None else texts
    num_regions = [3, 6, 0][: len(texts)] if num_regions is None else num_regions
    feats, boxes, sizes = regions(num_regions, seed)
    kwargs = {**LAYOUT, **layout}
    return build_batch(tokenizer(), texts, tags, feats, boxes, sizes, mask_type=mask_type, **kwargs)


def model(task: str, arch: str = "cross", **kwargs):
    """A `tiny` preset model of the toy layout, in eval mode, seeded."""
    from vlkd_cli.models import create_vl_model

    torch.manual_seed(0)
    args = {"num_answers": 7, **LAYOUT, **kwargs}
    return create_vl_model(task=task, arch=arch, preset="tiny", tokenizer=tokenizer(),
                           region_feature_dim=FEATURE_DIM, **args).eval()  # fmt: skip
