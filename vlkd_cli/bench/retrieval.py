"""Retrieval mode of `vlkd benchmark-latency`: the time to rank a gallery of N images × M texts.

The gallery's region features are extracted once, untimed (every method needs them and they are computed the same
way, see `vlkd_cli.bench.pipeline`); what is timed is the ranking, with the functions `eval-retrieval` runs
(`vlkd_cli.tasks.ranking`, called by `stages/eval_retrieval.py`):

- cross-encoder (ITM head, arch cross): `score_pairs` = all N·M pairs through the model (`cross_scores`), `rank` =
  ranks and recall of the (N, M) matrix (`rank_matrix`). With `--max-pairs P` < N·M only about P pairs (whole text
  chunks) are scored and the time is scaled linearly to N·M; such rows carry `"extrapolated_from_pairs"`.
- dual encoder: `embed` = every image and text through its tower (`dual_embeddings`), `search` = faiss flat top-10
  both ways + recall (`rank_dual`); `total` = embed + search.
- two-stage (a dual encoder, and a cross-encoder among the --model's: the first one re-ranks): `rerank` = faiss
  top-K both ways (K = `--rerank-k`) + the cross-encoder on the shortlisted pairs (`rank_dual` with `pair_scorer`);
  `two_stage_total` = embed + rerank.

Images are the files under `--images`, cycled when N is larger (their ids are renumbered 0..N-1); texts are short
generated captions, cycled over the images. Compute does not depend on the words: every text is padded to the
model's fixed layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vlkd_cli.artifacts.regions import ImageRegions
from vlkd_cli.bench.models import BenchModel
from vlkd_cli.bench.pipeline import Proposals, image_stages, prepare_end_to_end
from vlkd_cli.bench.timing import StageClock, measure, quiet_progress
from vlkd_cli.data.demo_scenes import COLORS, SHAPES
from vlkd_cli.data.image_index import ImageRef
from vlkd_cli.data.vl_datasets import Sample, VLCollator
from vlkd_cli.tasks.inference import InferenceModel
from vlkd_cli.tasks.ranking import Gallery, cross_scores, dual_embeddings, pair_scorer, rank_dual, rank_matrix

CROSS_STAGES = ("score_pairs", "rank", "total")
DUAL_STAGES = ("embed", "search", "total", "rerank", "two_stage_total")
EXTRACT_BATCH = 8  # images per forward pass while extracting the gallery's regions (untimed)


class MemoryRegions:
    """A gallery's regions held in memory, with the two members `VLCollator` reads (`categories`, `image(n)`)."""

    def __init__(self, images: list[ImageRegions], categories: list[dict]) -> None:
        self.images, self.categories = images, categories

    def image(self, n: int, *, student: bool = True, teacher: bool = True) -> ImageRegions:
        return self.images[n]


def gallery_regions(bm: BenchModel, proposals: Proposals, refs: list[ImageRef], image_size: int,
                    device: torch.device) -> MemoryRegions:  # fmt: skip
    """Regions and features (the model's backbone and side) of each distinct image, in `refs` order."""
    e2e = prepare_end_to_end(bm, proposals, refs, image_size, decode_length=1, beam_size=1)
    clock = StageClock(device)
    images = []
    with torch.inference_mode():
        for start in range(0, len(refs), EXTRACT_BATCH):
            chunk = refs[start : start + EXTRACT_BATCH]
            fixed = None if e2e.fixed is None else e2e.fixed[start : start + EXTRACT_BATCH]
            found = image_stages(bm, proposals, chunk, fixed, clock, image_size)
            for ref, boxes, labels, size, feats in zip(chunk, found.boxes, found.labels, found.sizes, found.features):
                rows = feats.numpy()  # (n, D) float32
                images.append(ImageRegions(ref.image_id, tuple(size), boxes, np.ones(len(boxes), np.float32), labels,
                                           rows if bm.lineage.side == "student" else None,
                                           rows if bm.lineage.side == "teacher" else None))  # fmt: skip
    return MemoryRegions(images, bm.lineage.categories or proposals.categories)


def gallery_texts(count: int, seed: int) -> list[str]:
    """`count` short generated captions ("a red circle to the left of two blue stars")."""
    rng = np.random.default_rng(seed)
    colors, shapes = sorted(COLORS), list(SHAPES)
    relations = ("to the left of", "above", "next to", "below", "to the right of")
    counts = ("a", "two", "three")
    texts = []
    for _ in range(count):
        n1, n2 = rng.choice(counts, size=2)
        c1, c2 = rng.choice(colors, size=2)
        s1, s2 = rng.choice(shapes, size=2)
        texts.append(f"{n1} {c1} {s1}{'' if n1 == 'a' else 's'} {rng.choice(relations)} {n2} {c2} "
                     f"{s2}{'' if n2 == 'a' else 's'}")  # fmt: skip
    return texts


def make_gallery(num_distinct: int, num_images: int, num_texts: int, seed: int) -> Gallery:
    """N images cycling over `num_distinct` region rows (ids 0..N-1) and M texts cycling over the images."""
    image_indices = [i % num_distinct for i in range(num_images)]
    texts = [Sample(image_indices[j % num_images], j % num_images, text)
             for j, text in enumerate(gallery_texts(num_texts, seed))]  # fmt: skip
    return Gallery(np.arange(num_images, dtype=np.int64), image_indices, texts,
                   np.asarray([t.image_id for t in texts], dtype=np.int64))  # fmt: skip


def inference_model(bm: BenchModel, regions: MemoryRegions, device: torch.device) -> InferenceModel:
    """`eval-retrieval`'s InferenceModel over in-memory regions."""
    collator = VLCollator(regions, bm.tokenizer, features=bm.lineage.side, batch_kwargs=bm.model.batch_kwargs(),
                          use_tags=bool(bm.config.get("use_tags", True)))  # fmt: skip
    return InferenceModel(bm.model, bm.tokenizer, bm.config, collator, device, bm.record)


def pair_sample(gallery: Gallery, max_pairs: int | None) -> tuple[Gallery, int]:
    """The gallery itself, or its first images × texts holding about `max_pairs` pairs; and the pair count."""
    num_images, num_texts = len(gallery.image_ids), len(gallery.texts)
    if max_pairs is None or max_pairs >= num_images * num_texts:
        return gallery, num_images * num_texts
    rows = max(1, max_pairs // num_texts)
    texts = gallery.texts if max_pairs >= num_texts else gallery.texts[:max_pairs]
    sample = Gallery(gallery.image_ids[:rows], gallery.image_indices[:rows], texts,
                     np.asarray([t.image_id for t in texts], dtype=np.int64))  # fmt: skip
    return sample, rows * len(texts)


@dataclass
class RetrievalTiming:
    """Per-stage (iters,) milliseconds of one model, and the notes its rows carry."""

    timings: dict[str, np.ndarray]
    notes: dict[str, dict]  # stage -> extra row keys


def time_cross(loaded: InferenceModel, gallery: Gallery, *, batch_size: int, max_pairs: int | None, warmup: int,
               iters: int, seed: int) -> RetrievalTiming:  # fmt: skip
    """Cross-encoder: score every pair (or a sample, scaled linearly), then rank the full matrix."""
    sample, pairs = pair_sample(gallery, max_pairs)
    total_pairs = len(gallery.image_ids) * len(gallery.texts)
    scale = total_pairs / pairs
    rng = np.random.default_rng(seed)
    full = rng.standard_normal((len(gallery.image_ids), len(gallery.texts))).astype(np.float32) if scale > 1 else None

    def iteration() -> dict[str, float]:
        clock = StageClock(loaded.device)
        with clock("score_pairs"):
            matrix = cross_scores(loaded, sample, batch_size)  # (I', T')
        clock.seconds["score_pairs"] *= scale
        with clock("rank"):
            rank_matrix(matrix if full is None else full, gallery.image_ids, gallery.text_image_ids)
        clock.seconds["total"] = clock.seconds["score_pairs"] + clock.seconds["rank"]
        return clock.seconds

    with quiet_progress(), torch.inference_mode():
        timings = measure(iteration, warmup, iters)
    note = {"extrapolated_from_pairs": pairs} if scale > 1 else {}
    return RetrievalTiming(timings, {"score_pairs": note, "total": note})


def time_dual(loaded: InferenceModel, gallery: Gallery, *, batch_size: int, warmup: int, iters: int,
              reranker: InferenceModel | None = None, reranker_arg: str = "", rerank_k: int = 16,
              ) -> RetrievalTiming:  # fmt: skip
    """Dual encoder: embed + faiss flat search; with a cross-encoder `reranker`, also the two-stage ranking."""
    scorer = None if reranker is None else pair_scorer(reranker, gallery, batch_size)

    def iteration() -> dict[str, float]:
        clock = StageClock(loaded.device)
        with clock("embed"):
            image_emb, text_emb = dual_embeddings(loaded, gallery, batch_size)  # (I, P), (T, P)
        with clock("search"):
            rank_dual(gallery, image_emb, text_emb)
        clock.seconds["total"] = clock.seconds["embed"] + clock.seconds["search"]
        if scorer is not None:
            with clock("rerank"):
                rank_dual(gallery, image_emb, text_emb, rerank_k=rerank_k, reranker=scorer)
            clock.seconds["two_stage_total"] = clock.seconds["embed"] + clock.seconds["rerank"]
        return clock.seconds

    with quiet_progress(), torch.inference_mode():
        timings = measure(iteration, warmup, iters)
    notes = {}
    if reranker is not None:
        extra = {"rerank_model": reranker_arg, "rerank_k": rerank_k}
        notes = {"rerank": extra, "two_stage_total": extra}
    return RetrievalTiming(timings, notes)


def distinct_refs(refs: list[ImageRef], num_images: int) -> list[ImageRef]:
    """The images whose regions are extracted: the first min(N, available) files."""
    return refs[: max(1, min(num_images, len(refs)))]
