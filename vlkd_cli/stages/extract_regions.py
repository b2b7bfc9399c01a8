"""`vlkd extract-regions`: student proposals, then student AND teacher RoI features on the same boxes.

DistillVLM (Fang et al., ICCV 2021) adapts the teacher to the student's detector: the teacher is retrained on
the student's boxes with features from its own backbone. This stage produces exactly that input: one
`regions` artifact with the student's boxes, `student_features` from the student backbone (the detector's own
backbone with `--detector`) and `teacher_features` from the teacher backbone, both pooled on the same boxes.
Run with another detector's `--proposals` it gives the teacher's own regions (the no-adaptation ablation).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from vlkd_cli.artifacts.io import build_metadata, input_record
from vlkd_cli.artifacts.regions import RegionsWriter
from vlkd_cli.artifacts.shards import parse_shard, shard_path, shard_range
from vlkd_cli.data.batching import DecodeStats, iter_batches
from vlkd_cli.data.detections import select_regions
from vlkd_cli.data.image_index import ImageRef, image_list_sha256, resolve_images
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.progress import progress_bar
from vlkd_cli.runtime import rank, resolve_device, seed_everything, world_size
from vlkd_cli.vision.backbone import Backbone, create_backbone
from vlkd_cli.vision.proposals import DetectorProposals, FileProposals
from vlkd_cli.vision.roi import pooled_roi_features

DEFAULT_IMAGE_SIZE = 448  # longest side fed to the backbones when no detector fixes it


@dataclass(frozen=True)
class ExtractConfig:
    """Resolved options of `extract-regions` (stamped into the artifact as `vlkd.config`)."""

    images: Path
    out: Path
    teacher_backbone: str
    student_backbone: str | None = None
    annotations: Path | None = None
    split: str | None = None
    detector: Path | None = None
    proposals: Path | None = None
    student_backbone_weights: Path | None = None
    teacher_backbone_weights: Path | None = None
    pretrained: bool = False
    image_size: int | None = None
    max_regions: int = 50
    score_threshold: float = 0.2
    nms_iou: float = 0.5
    roi_size: int = 4
    batch_size: int = 8
    feature_dtype: str = "float16"
    shard: str | None = None
    skip_bad_images: bool = False
    device: str = "auto"
    seed: int = 0


@dataclass(frozen=True)
class ExtractResult:
    path: Path
    num_images: int
    num_regions: int
    empty_images: int
    skipped_images: list[tuple[str, str]]
    boxes_sha256: str


def _check_config(cfg: ExtractConfig) -> None:
    if (cfg.detector is None) == (cfg.proposals is None):
        raise UsageError("give exactly one of --detector DIR or --proposals results.json")
    if cfg.detector is None and not cfg.student_backbone:
        raise UsageError("--student-backbone is required with --proposals")
    if cfg.feature_dtype not in ("float16", "float32"):
        raise UsageError(f"--feature-dtype must be float16 or float32, got {cfg.feature_dtype!r}")
    for name, value in (("--max-regions", cfg.max_regions), ("--batch-size", cfg.batch_size), ("--roi-size", cfg.roi_size)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    if cfg.image_size is not None and not 32 <= cfg.image_size <= 4096:
        raise UsageError(f"--image-size must be within 32..4096, got {cfg.image_size}")


def _shard_of(cfg: ExtractConfig) -> tuple[int, int] | None:
    """`--shard K/N`, else the torchrun rank/world size, else no sharding."""
    if cfg.shard:
        return parse_shard(cfg.shard)
    if world_size() > 1:
        return rank(), world_size()
    return None


def run(cfg: ExtractConfig) -> ExtractResult:
    """Extract regions for every image (of this shard) and write one `regions` artifact atomically."""
    _check_config(cfg)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    refs = resolve_images(cfg.images, cfg.annotations, cfg.split)
    shard = _shard_of(cfg)
    out = cfg.out if shard is None else shard_path(cfg.out, *shard)
    if shard is not None:
        refs = [refs[i] for i in shard_range(len(refs), *shard)]
    proposer = _make_proposer(cfg, refs, device)
    student = proposer.backbone.to(device).eval()
    teacher = create_backbone(cfg.teacher_backbone, weights=cfg.teacher_backbone_weights, pretrained=cfg.pretrained,
                              seed=cfg.seed + 1).to(device).eval()  # fmt: skip
    image_size = cfg.image_size or getattr(proposer, "image_size", None) or DEFAULT_IMAGE_SIZE
    writer = RegionsWriter(out, student_dim=sum(student.feature_channels), teacher_dim=sum(teacher.feature_channels),
                           feature_dtype=cfg.feature_dtype)  # fmt: skip
    stats, totals = DecodeStats(skipped=[]), {"regions": 0, "empty": 0, "images": 0}
    try:
        with torch.inference_mode(), progress_bar("extract-regions", len(refs)) as advance:
            for batch in iter_batches(refs, image_size=image_size, batch_size=cfg.batch_size,
                                      skip_bad_images=cfg.skip_bad_images, stats=stats):  # fmt: skip
                _extract_batch(batch, cfg, proposer, student, teacher, writer, device, totals)
                advance(len(batch.refs))
        if refs and totals["images"] == 0:
            raise InputError(f"none of the {len(refs)} images could be read", cfg.images)
        metadata = _metadata(cfg, student, teacher, proposer, image_size, shard, refs)
        key = writer.finish(metadata)
    finally:
        writer.close()
    return ExtractResult(out, totals["images"], totals["regions"], totals["empty"], stats.skipped, key)


def _extract_batch(batch, cfg, proposer, student, teacher, writer, device, totals) -> None:
    pixels = batch.pixels.to(device).contiguous(memory_format=torch.channels_last)
    raw, student_maps = proposer(batch, pixels)  # detections in original pixels; L x (B, C_l, H_l, W_l)
    selected = [
        select_regions(d, height=h, width=w, score_threshold=cfg.score_threshold, nms_iou=cfg.nms_iou,
                       max_regions=cfg.max_regions)  # fmt: skip
        for d, (h, w) in zip(raw, batch.sizes)
    ]
    boxes = [s.boxes for s in selected]
    student_features = pooled_roi_features(student_maps, student.feature_strides, batch, boxes, cfg.roi_size)  # (R, Ds)
    teacher_maps = teacher(teacher.preprocess(pixels))  # L x (B, C_l, H_l, W_l)
    teacher_features = pooled_roi_features(teacher_maps, teacher.feature_strides, batch, boxes, cfg.roi_size)  # (R, Dt)
    start = 0
    for ref, size, regions in zip(batch.refs, batch.sizes, selected):
        end = start + len(regions.boxes)
        writer.add(ref.image_id, size, regions.boxes, regions.scores, regions.labels,
                   student_features[start:end], teacher_features[start:end])  # fmt: skip
        start = end
        totals["images"] += 1
        totals["regions"] += len(regions.boxes)
        totals["empty"] += len(regions.boxes) == 0


def _make_proposer(cfg: ExtractConfig, refs: list[ImageRef], device) -> DetectorProposals | FileProposals:
    if cfg.proposals is not None:
        student = create_backbone(cfg.student_backbone, weights=cfg.student_backbone_weights,
                                  pretrained=cfg.pretrained, seed=cfg.seed)  # fmt: skip
        proposer = FileProposals(cfg.proposals, refs, student.to(device))
        proposer.categories = _annotation_categories(cfg.annotations)
        return proposer
    proposer = DetectorProposals(cfg.detector, device)
    if cfg.student_backbone and cfg.student_backbone != proposer.backbone.name:
        raise UsageError(
            f"--student-backbone {cfg.student_backbone} differs from the detector's backbone {proposer.backbone.name}: "
            "with --detector, student features come from the detector's own backbone"
        )
    return proposer


def _annotation_categories(annotations: Path | None) -> list[dict]:
    """Category ids and names of a COCO instances file given as --annotations (labels become object tags)."""
    if annotations is None:
        return []
    try:
        data = json.loads(Path(annotations).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []  # resolve_images has already reported a broken file
    categories = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(categories, list):
        return []
    return [{"id": int(c["id"]), "name": str(c.get("name", c["id"]))} for c in categories if isinstance(c, dict) and "id" in c]


def _metadata(cfg, student: Backbone, teacher: Backbone, proposer, image_size: int, shard, refs) -> dict[str, str]:
    inputs = [{"path": str(cfg.images), "kind": "images", "sha256": image_list_sha256(refs)}]
    if cfg.annotations is not None:
        inputs.append(input_record(cfg.annotations, "annotations"))
    inputs.append(input_record(cfg.detector, "detector") if cfg.detector else input_record(cfg.proposals, "proposals"))
    for weights in (cfg.student_backbone_weights, cfg.teacher_backbone_weights):
        if weights is not None:
            inputs.append(input_record(weights, "backbone_weights"))
    config = {**asdict(cfg), "image_size": image_size}
    return build_metadata("regions", command="extract-regions", config=config, inputs=inputs, extra={
        "vlkd.student_backbone": student.name,
        "vlkd.student_backbone_sha256": student.weights_sha256,
        "vlkd.teacher_backbone": teacher.name,
        "vlkd.teacher_backbone_sha256": teacher.weights_sha256,
        "vlkd.categories": json.dumps(proposer.categories),
        "vlkd.proposals": proposer.name,
        "vlkd.image_size": str(image_size),
        "vlkd.roi_size": str(cfg.roi_size),
        "vlkd.shard": "0/1" if shard is None else f"{shard[0]}/{shard[1]}",
    })  # fmt: skip
