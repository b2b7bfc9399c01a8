"""DCD's candidate pools: which captions the teacher scores for each training image.

The released code (raojay7/DCD) draws the P − 1 pool captions at random, so the teacher's "hardest" negatives are
the hardest of a random handful and rarely hard. A retriever's top candidates make them hard:

    C_i = the top M captions of other images for image i under a dual encoder's cosine   (I, M), M = 2 (P − 1)
    pool_i = the positive + P − 1 captions drawn uniformly from C_i                       (each step, fresh draws)

`--dcd-pool-source` picks the retriever: `random` (the released behaviour, no retriever), `student` (the dual
student itself, re-ranked every `--dcd-pool-refresh` steps as it learns: ANCE-style, Xiong et al., ICLR 2021), or
a dual-encoder model directory (fixed). The candidate table is a buffer of the DCD module, so checkpoints hold it
and a resumed run draws from the same table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.vl_datasets import Sample, VLCollator, reindexed
from vlkd_cli.errors import InputError
from vlkd_cli.eval.gallery import search
from vlkd_cli.tasks.inference import InferenceModel, load_inference_model
from vlkd_cli.tasks.pair_scores import image_embeddings, text_embeddings

RANDOM, STUDENT = "random", "student"


def candidates_per_pool(pool_size: int) -> int:
    """M: how many of the retriever's top captions each image's pool is drawn from."""
    return 2 * (pool_size - 1)


@torch.no_grad()
def retriever_candidates(model: torch.nn.Module, collator: VLCollator, train: Sequence[Sample], top: int,
                         batch_size: int = 64, regions: Regions | None = None) -> Tensor:  # fmt: skip
    """(I, top) int64 indices into `train`: for each training image (in order of first appearance), its `top`
    highest-scored captions of OTHER images under the dual encoder `model` (fewer → the rest drawn at random).
    `regions`: the ones `collator` reads, when they are not those of `train` (images looked up by id)."""
    if regions is not None:
        train = reindexed(train, regions)
    caption_image = np.asarray([s.image_id for s in train], dtype=np.int64)
    rows = image_rows(train)
    index_of = {s.image_id: s.image_index for s in train}
    was_training = model.training
    model.eval()
    images = image_embeddings(model, collator, [index_of[i] for i in rows], batch_size)
    texts = text_embeddings(model, collator, train, batch_size)
    model.train(was_training)
    own_captions = int(np.bincount(np.unique(caption_image, return_inverse=True)[1]).max())
    k = min(len(train), top + own_captions)
    _, indices = search(images.float().cpu().numpy(), texts.float().cpu().numpy(), k)  # (I, k)
    table = np.empty((len(rows), top), dtype=np.int64)
    for image_id, row in rows.items():
        found = [int(j) for j in indices[row] if j >= 0 and caption_image[j] != image_id][:top]
        if len(found) < top:  # a tiny training set: fill up with random captions of other images
            others = np.flatnonzero(caption_image != image_id)
            found += np.random.choice(others, top - len(found)).tolist()
        table[row] = found
    return torch.from_numpy(table)


def load_retriever(source: str, regions: Regions, device: torch.device) -> InferenceModel | None:
    """The fixed dual-encoder retriever of `--dcd-pool-source DIR` (None for random or student)."""
    if source in (RANDOM, STUDENT):
        return None
    loaded = load_inference_model(Path(source), regions, tasks=("retrieval",), device=device)
    if not loaded.is_dual:
        raise InputError("--dcd-pool-source must be a dual-encoder retrieval model (finetune --arch dual)", source)
    return loaded


def initial_candidates(source: str, pool_size: int, train: Sequence[Sample], retriever: InferenceModel | None,
                       student: tuple[torch.nn.Module, VLCollator],
                       retriever_regions: Regions | None = None) -> Tensor | None:  # fmt: skip
    """The candidate table the first pools are drawn from: the fixed retriever's (on `retriever_regions` when it
    has its own), the student's, or None (the released random pools)."""
    if source == RANDOM:
        return None
    if retriever is None:
        return retriever_candidates(*student, train, candidates_per_pool(pool_size))
    return retriever_candidates(retriever.model, retriever.collator, train, candidates_per_pool(pool_size),
                                regions=retriever_regions)  # fmt: skip


def image_rows(train: Sequence[Sample]) -> dict[int, int]:
    """Image id → its row of the candidate table (order of first appearance in `train`)."""
    rows: dict[int, int] = {}
    for sample in train:
        rows.setdefault(sample.image_id, len(rows))
    return rows


def draw_from_candidates(candidates: Tensor, row: int, count: int) -> np.ndarray:
    """`count` distinct entries of the table's row (numpy's global generator: checkpoints restore it)."""
    return np.random.choice(candidates[row].cpu().numpy(), size=count, replace=count > candidates.shape[1])
