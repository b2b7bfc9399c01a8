"""One end-to-end inference of a VL model on image files, stage by stage, as `vlkd benchmark-latency` times it.

Stages (every one charged with its own wall clock, see `vlkd_cli.bench.timing`):

- `decode`: read and decode the files (EXIF orientation applied), resize to the longest side, pad and stack into a
  uint8 batch on the device (`data.images.load_image` + `data.batching.collate`, what extract-regions runs);
- `detector`: vlkd's detector forward + CenterNet decoding + score threshold / NMS / top-k (`--detector`); skipped
  when the boxes come from `--proposals` (or from the fixed grid used when neither is given);
- `backbone_roi`: the model's lineage backbone on the normalised batch and RoIAlign pooling of every box
  (`vision.roi.roi_features`); with a detector whose backbone is the model's, the detector's maps are pooled;
- `inputs`: tokenization of the text and object tags, padding to the model's layout, attention masks, to device;
- `transformer`: time inside the VL transformer's forward calls (when decoding captions: one pass over the tags and
  regions, then one per step over the newest token and the cached keys/values);
- `head`: the rest of the task step: the answer classifier (VQA), the ITM head, or for captions the LM head and the
  greedy/beam bookkeeping over exactly `--decode-length` steps (`min_length == max_length`: no early stop, so
  teacher and student decode the same number of tokens).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vlkd_cli.bench.models import BenchModel
from vlkd_cli.bench.timing import ModuleTimer, StageClock, synchronize
from vlkd_cli.data.batching import ImageBatch, collate
from vlkd_cli.data.detections import Detections, load_detection_results, select_regions
from vlkd_cli.data.image_index import ImageRef
from vlkd_cli.data.images import load_image
from vlkd_cli.errors import InputError
from vlkd_cli.models.decoding import DecodeResult
from vlkd_cli.structures.vl_batch import VLBatch, build_batch
from vlkd_cli.vision.roi import roi_features

STAGES = ("decode", "detector", "backbone_roi", "inputs", "transformer", "head", "total")
QUESTION = "what color is the shape on the left of the picture?"  # the VQA input text (compute does not depend on it)


@dataclass
class Proposals:
    """Where the boxes come from: vlkd's detector (timed), a COCO results file or a fixed grid (both untimed)."""

    detector: object | None = None  # vision.proposals.DetectorProposals
    path: Path | None = None  # the detector directory or the results file
    results: dict[int, Detections] | None = None
    skipped: str | None = None  # why the detector stage does not run

    @property
    def categories(self) -> list[dict]:
        return list(getattr(self.detector, "categories", []) or [])


def make_proposals(detector: Path | None, proposals: Path | None, refs: list[ImageRef], device) -> Proposals:
    """Load the detector or the results file (exit 3 if the results cover none of the images)."""
    if detector is not None:
        from vlkd_cli.vision.proposals import DetectorProposals

        found = DetectorProposals(detector, device)
        found.detector.eval()
        return Proposals(detector=found, path=detector)
    if proposals is not None:
        results = load_detection_results(proposals)
        if not any(ref.image_id in results for ref in refs):
            raise InputError(f"the proposals cover none of the {len(refs)} images (ids from the file names)", proposals)
        return Proposals(results=results, skipped="regions come from --proposals", path=proposals)
    return Proposals(skipped="no --detector or --proposals: a fixed grid of boxes per image")


def model_proposals(models: int, detectors: tuple[Path, ...], proposals: Path | None, refs: list[ImageRef],
                    device) -> list[Proposals]:  # fmt: skip
    """Each model's proposal source: its own detector (one per model), the one detector or results file for all, or
    the grid. A detector given for several models is loaded once."""
    if len(detectors) <= 1:
        shared = make_proposals(detectors[0] if detectors else None, proposals, refs, device)
        return [shared] * models
    loaded: dict[Path, Proposals] = {}
    for path in detectors:
        if path not in loaded:
            loaded[path] = make_proposals(path, None, refs, device)
    return [loaded[path] for path in detectors]


def grid_boxes(height: int, width: int, count: int) -> np.ndarray:
    """(count, 4) float32 xyxy boxes tiling the image on a ceil(sqrt(count))² grid, row-major."""
    side = max(1, math.ceil(math.sqrt(count)))
    ys, xs = np.linspace(0, height, side + 1), np.linspace(0, width, side + 1)
    boxes = [[xs[c], ys[r], xs[c + 1], ys[r + 1]] for r in range(side) for c in range(side)]
    return np.asarray(boxes[:count], dtype=np.float32).reshape(-1, 4)


def fixed_regions(proposals: Proposals, ref: ImageRef, size: tuple[int, int], selection: dict) -> Detections:
    """The regions of an image without a detector: its file proposals (selected) or the grid."""
    height, width = size
    if proposals.results is None:
        count = int(selection["max_regions"])
        return Detections(grid_boxes(height, width, count), np.ones(count, np.float32), np.full(count, -1, np.int64))
    raw = proposals.results.get(ref.image_id, Detections.empty())
    return select_regions(raw, height=height, width=width, **selection)


def selection_of(bm: BenchModel) -> dict:
    """select_regions' arguments from the lineage, at most the model's region slots."""
    selection = dict(bm.lineage.selection)
    selection["max_regions"] = int(min(selection["max_regions"], bm.config["layout"]["max_regions"]))
    return selection


def tag_names(bm: BenchModel, proposals: Proposals) -> dict[int, str] | None:
    """Category id -> tag word, as the training collator builds object tags; None when the model uses none."""
    if not bm.config.get("use_tags", True) or int(bm.config["layout"].get("max_tag_len", 0)) < 1:
        return None
    categories = bm.lineage.categories or proposals.categories
    return {int(c["id"]): str(c.get("name", c["id"])) for c in categories if isinstance(c, dict) and "id" in c}


@dataclass
class ImageFeatures:
    """Region inputs of a batch of images: per image boxes (n, 4), labels (n,), size (h, w), features (n, D)."""

    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    sizes: list[tuple[int, int]]
    features: list[Tensor]


def _pool(maps: list[Tensor], strides: list[int], batch: ImageBatch, boxes: list[np.ndarray], roi_size: int):
    """Per image (n_i, D) float32 CPU features of `boxes` (original pixels) pooled from the batch's maps."""
    scaled = [torch.from_numpy(b * np.array([sx, sy, sx, sy], dtype=np.float32)) for b, (sx, sy) in
              zip(boxes, batch.scales)]  # fmt: skip
    pooled = roi_features(maps, strides, scaled, output_size=roi_size).float().cpu()  # (R, D)
    return list(torch.split(pooled, [len(b) for b in boxes]))


def image_stages(bm: BenchModel, proposals: Proposals, refs: list[ImageRef], fixed: list[Detections] | None,
                 clock: StageClock, image_size: int) -> ImageFeatures:  # fmt: skip
    """decode, detector (when there is one), backbone_roi; `fixed`: the regions when there is no detector."""
    device = clock.device
    with clock("decode"):
        batch = collate([(ref, load_image(ref.path, max_side=image_size)) for ref in refs])
        pixels = batch.pixels.to(device).contiguous(memory_format=torch.channels_last)  # (B, 3, H, W) uint8
    maps = None
    if proposals.detector is not None:
        selection = selection_of(bm)
        with clock("detector"):
            raw, maps = proposals.detector(batch, pixels)
            regions = [select_regions(d, height=h, width=w, **selection) for d, (h, w) in zip(raw, batch.sizes)]
    else:
        regions = fixed
    boxes = [r.boxes for r in regions]
    with clock("backbone_roi"):
        if bm.backbone is None:  # the detector's own maps (student features from the detector's backbone)
            strides = proposals.detector.backbone.feature_strides
        else:
            maps, strides = bm.backbone(bm.backbone.preprocess(pixels)), bm.backbone.feature_strides
        features = _pool(maps, strides, batch, boxes, bm.lineage.roi_size)
    return ImageFeatures(boxes, [r.labels for r in regions], list(batch.sizes), features)


def model_inputs(bm: BenchModel, images: ImageFeatures, names: dict[int, str] | None, texts: list[str] | None,
                 device: torch.device) -> VLBatch:  # fmt: skip
    """The model's padded VL batch on the device (tags from the labels, as the training collator makes them)."""
    tags = None if names is None else [[names[int(c)] for c in labels if int(c) in names] for labels in images.labels]
    batch = build_batch(bm.tokenizer, texts, tags, images.features, images.boxes, images.sizes,
                        **bm.model.batch_kwargs())  # fmt: skip
    return batch.to(device)


def fixed_length_captions(model, batch: VLBatch, length: int, beam_size: int) -> DecodeResult:
    """Caption every row with exactly `length` decoding steps (greedy, or beam search with `beam_size`)."""
    return model.generate(batch, beam_size=beam_size, max_length=length, min_length=length)


def run_head(bm: BenchModel, batch: VLBatch, decode_length: int, beam_size: int) -> Tensor | DecodeResult:
    """The task's inference on a built batch: caption decoding, VQA logits or ITM scores."""
    if bm.task == "caption":
        return fixed_length_captions(bm.model, batch, decode_length, beam_size)
    if bm.task == "vqa":
        return bm.model.vqa_logits(batch)
    return bm.model.itm_scores(batch)


@dataclass
class EndToEnd:
    """What one model's end-to-end iterations need besides the model."""

    proposals: Proposals
    refs: list[ImageRef]
    fixed: list[Detections] | None
    image_size: int
    decode_length: int
    beam_size: int
    names: dict[int, str] | None
    regions: list[int] | None = None  # regions per image of the last iteration (what the transformer read)


def prepare_end_to_end(bm: BenchModel, proposals: Proposals, refs: list[ImageRef], image_size: int,
                       decode_length: int, beam_size: int) -> EndToEnd:  # fmt: skip
    """Look up the boxes that are not detected at run time (file proposals or grid) before anything is timed."""
    fixed = None
    if proposals.detector is None:
        selection = selection_of(bm)
        fixed = []
        for ref in refs:
            decoded = load_image(ref.path, max_side=64)  # only the full size is needed
            fixed.append(fixed_regions(proposals, ref, (decoded.height, decoded.width), selection))
    return EndToEnd(proposals, refs, fixed, image_size, decode_length, beam_size, tag_names(bm, proposals))


def end_to_end_iteration(bm: BenchModel, e2e: EndToEnd, timer: ModuleTimer, device: torch.device) -> dict[str, float]:
    """Seconds of each stage of one inference on `e2e.refs`, and the wall-clock `total`."""
    clock = StageClock(device)
    synchronize(device)
    start = time.perf_counter()
    images = image_stages(bm, e2e.proposals, e2e.refs, e2e.fixed, clock, e2e.image_size)
    e2e.regions = [len(boxes) for boxes in images.boxes]
    texts = [QUESTION] * len(e2e.refs) if bm.task == "vqa" else None
    with clock("inputs"):
        batch = model_inputs(bm, images, e2e.names, texts, device)
    timer.take()
    with clock("head"):
        run_head(bm, batch, e2e.decode_length, e2e.beam_size)
    inside = timer.take()  # the transformer's share of the head step
    clock.seconds["head"] -= inside
    clock.add("transformer", inside)
    synchronize(device)
    clock.seconds["total"] = time.perf_counter() - start
    return clock.seconds
