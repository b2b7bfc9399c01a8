"""`vlkd import-regions --format vinvl-tsv`: VinVL / Oscar feature TSVs become a `regions` artifact, streamed.

One side of the features (`--side teacher` by default: VinVL's X152-C4 features are the big teacher's) comes from
the TSV, split as the 2048 + 6 layout (the 2048 detector features are kept; the 6-d geometry only locates the
boxes, since vlkd recomputes the geometry from boxes and image sizes). The other side comes from a second TSV on
the same boxes, or is pooled on those boxes from the images with a timm backbone exactly as
`vlkd extract-regions --proposals` pools it (`vision.roi.pooled_roi_features`, same seeds), so an artifact imported
here and one extracted on the same boxes hold the same student features and the same `vlkd.boxes_sha256`.

Boxes come from the label TSV's rects (pixels) or, without labels, from the geometry × image size; when both
exist they must agree. Image sizes come from the decoded images, a `hw.tsv`, the label rows' `image_h`/`image_w`,
or (last resort) from the rects and the geometry together; every source given must agree. Formats: see
`vlkd_cli.data.vinvl_tsv` (microsoft/Oscar, microsoft/scene_graph_benchmark).

Memory: the TSVs are indexed (two int64 per row) and read row by row; images are decoded batch by batch; the
RegionsWriter streams rows to disk. Nothing grows with the number of images except those per-row/per-image scalars.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vlkd_cli.artifacts.io import build_metadata, input_record
from vlkd_cli.artifacts.regions import RegionsWriter
from vlkd_cli.data.coco import parse_image_ids
from vlkd_cli.data.image_index import ImageRef, resolve_images
from vlkd_cli.data.karpathy import is_karpathy, parse_karpathy
from vlkd_cli.data.vinvl_images import VinvlImage, VinvlSources, assemble_image, tsv_chunks
from vlkd_cli.data.vinvl_tsv import TSV_DTYPES, FeatureTsv, HwTsv, LabelTsv, TsvFile
from vlkd_cli.data.vqa import is_vqa_annotations, is_vqa_questions
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.jsonfile import read_json
from vlkd_cli.progress import progress_bar

FORMATS = ("vinvl-tsv",)
SIDES = ("teacher", "student")


@dataclass(frozen=True)
class ImportConfig:
    """Resolved options of `import-regions` (stamped into the artifact as `vlkd.config`).

    `features` is the TSV of `side`; the other side comes from `<other>_features` (a second TSV) or from
    `images` + `<other>_backbone`.
    """

    features: Path
    out: Path
    format: str = "vinvl-tsv"
    side: str = "teacher"
    labels: Path | None = None
    hw: Path | None = None
    student_features: Path | None = None
    teacher_features: Path | None = None
    images: Path | None = None
    student_backbone: str | None = None
    teacher_backbone: str | None = None
    student_backbone_weights: Path | None = None
    teacher_backbone_weights: Path | None = None
    pretrained: bool = False
    annotations: Path | None = None
    split: str | None = None
    image_size: int | None = None
    roi_size: int = 4
    batch_size: int = 8
    feature_dtype: str = "float16"
    tsv_dtype: str = "float32"
    extractor: str = "vinvl-tsv"
    other_extractor: str = "tsv"
    box_tolerance: float = 1.0
    device: str = "auto"
    seed: int = 0

    @property
    def other(self) -> str:
        return "student" if self.side == "teacher" else "teacher"

    def of(self, name: str, side: str):
        """The `<side>_<name>` option, e.g. `of("backbone", "student")`."""
        return getattr(self, f"{side}_{name}")


@dataclass(frozen=True)
class ImportResult:
    path: Path
    num_images: int
    num_regions: int
    empty_images: int
    boxes_sha256: str
    categories: int
    clipped_boxes: int
    unused_rows: int
    box_source: str
    size_sources: dict[str, int] = field(default_factory=dict)


def _check_config(cfg: ImportConfig) -> None:
    if cfg.format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
    if cfg.side not in SIDES:
        raise UsageError(f"--side must be teacher or student, got {cfg.side!r}")
    for name in ("features", "backbone", "backbone_weights"):
        if cfg.of(name, cfg.side) is not None:
            flag = f"--{cfg.side}-{name.replace('_', '-')}"
            raise UsageError(f"{flag} is for the other side: the TSV already gives the {cfg.side} features (--side)")
    other_tsv, backbone = cfg.of("features", cfg.other), cfg.of("backbone", cfg.other)
    if (other_tsv is None) == (backbone is None):
        raise UsageError(
            f"give the {cfg.other} features: either --{cfg.other}-features OTHER.feature.tsv, or --images DIR with "
            f"--{cfg.other}-backbone NAME"
        )
    if backbone is not None and cfg.images is None:
        raise UsageError(f"--{cfg.other}-backbone pools features from the images: give --images DIR")
    if backbone is None and (cfg.images is not None or cfg.pretrained or cfg.of("backbone_weights", cfg.other)):
        raise UsageError(f"--images, --pretrained and backbone weights only serve --{cfg.other}-backbone")
    if cfg.labels is None and cfg.hw is None and cfg.images is None:
        raise UsageError("boxes from the 2048 + 6 geometry need image sizes: give --labels, --hw or --images")
    if cfg.split is not None and cfg.annotations is None:
        raise UsageError("--split needs --annotations (a Karpathy split file)")
    if cfg.feature_dtype not in ("float16", "float32"):
        raise UsageError(f"--feature-dtype must be float16 or float32, got {cfg.feature_dtype!r}")
    if cfg.tsv_dtype not in TSV_DTYPES:
        raise UsageError(f"--tsv-dtype must be float32 or float16, got {cfg.tsv_dtype!r}")
    for name, value in (("--batch-size", cfg.batch_size), ("--roi-size", cfg.roi_size)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    if cfg.image_size is not None and not 32 <= cfg.image_size <= 4096:
        raise UsageError(f"--image-size must be within 32..4096, got {cfg.image_size}")
    if not cfg.box_tolerance >= 0:
        raise UsageError(f"--box-tolerance must be >= 0 pixels, got {cfg.box_tolerance}")


def run(cfg: ImportConfig) -> ImportResult:
    """Import the TSVs and write one `regions` artifact atomically (nothing is written on failure)."""
    _check_config(cfg)
    files: list[TsvFile] = []
    try:
        sources = _open_sources(cfg, files)
        refs, image_ids = _select_images(cfg, sources.main)
        _check_coverage(image_ids, sources, restricted=cfg.annotations is not None)
        categories, sources.category_of = _categories(cfg.annotations, sources.labels, image_ids)
        return _write(cfg, sources, refs, image_ids, categories)
    finally:
        for tsv in files:
            tsv.close()


def _open_sources(cfg: ImportConfig, files: list[TsvFile]) -> VinvlSources:
    """Open (and index) every TSV; `files` collects them so the caller closes them whatever happens."""

    def track(tsv):
        files.append(tsv)
        return tsv

    main = track(FeatureTsv(cfg.features, f"{cfg.side} feature TSV", cfg.tsv_dtype))
    labels = track(LabelTsv(cfg.labels)) if cfg.labels else None
    hw = track(HwTsv(cfg.hw)) if cfg.hw else None
    other_path = cfg.of("features", cfg.other)
    other = track(FeatureTsv(other_path, f"{cfg.other} feature TSV", cfg.tsv_dtype)) if other_path else None
    return VinvlSources(main, labels, hw, other, {}, cfg.box_tolerance)


# ------------------------------------------------------------------------------------------------ which images
def _select_images(cfg: ImportConfig, main: FeatureTsv) -> tuple[list[ImageRef] | None, list[int]]:
    """Image refs (with --images) and ids, ascending: the annotations' images, else every row of the TSV."""
    if cfg.images is not None:
        refs = resolve_images(cfg.images, cfg.annotations, cfg.split)
        if cfg.annotations is None:
            on_disk = {ref.image_id: ref for ref in refs}
            missing = [int(i) for i in np.unique(main.ids) if int(i) not in on_disk]
            if missing:
                row = main.row_of(missing[0])
                raise main.error(row, f"no image file under {cfg.images} for it ({len(missing)} rows have none)")
            refs = [on_disk[int(i)] for i in np.unique(main.ids)]
        return refs, [ref.image_id for ref in refs]
    if cfg.annotations is not None:
        return None, sorted(set(annotation_image_ids(cfg.annotations, cfg.split)))
    return None, [int(i) for i in np.unique(main.ids)]


def annotation_image_ids(path: Path, split: str | None = None) -> list[int]:
    """Image ids of a COCO (captions/instances), Karpathy split or VQA v2 questions/annotations file.

    Args:
        path: The file.
        split: Karpathy files only: keep this split (`train` = train + restval).

    Returns:
        The ids, in file order (VQA: first-seen order, without repeats).

    Raises:
        UsageError: `split` with a file that is not a Karpathy file.
        InputError: An unrecognised or invalid file.
    """
    data = read_json(path)
    if is_karpathy(data):
        return [image.image_id for image in parse_karpathy(data, Path(path), split)]
    if split is not None:
        raise UsageError("--split applies to Karpathy split files only", path)
    if isinstance(data, dict) and "images" in data:
        return list(parse_image_ids(data, Path(path)))
    for key, test in (("questions", is_vqa_questions), ("annotations", is_vqa_annotations)):
        if test(data):
            ids = {}
            for index, entry in enumerate(data[key]):
                if (
                    not isinstance(entry, dict)
                    or isinstance(entry.get("image_id"), bool)
                    or not isinstance(entry.get("image_id"), int)
                ):
                    raise InputError(f"{key}[{index}] has no integer image_id", path)
                ids[entry["image_id"]] = None
            return list(ids)
    raise InputError("not a COCO, Karpathy split or VQA v2 file (no 'images' or 'questions')", path)


def _check_coverage(image_ids: list[int], sources: VinvlSources, *, restricted: bool) -> None:
    """Every image has a row in every TSV; without annotations, labels and second features match the rows exactly."""
    main, wanted = sources.main, np.asarray(image_ids, dtype=np.int64)
    absent = wanted[~np.isin(wanted, main.ids)]
    if absent.size:
        raise InputError(
            f"image {int(absent[0])} (from the annotations) has no row in this file ({absent.size} of {wanted.size} "
            "images have none)",
            main.path,
        )
    for tsv in (sources.labels, sources.hw, sources.other):
        if tsv is None:
            continue
        if not restricted and tsv is not sources.hw:
            extra = np.flatnonzero(~np.isin(tsv.ids, main.ids))
            if extra.size:
                message = f"no row for this image in {main.path.name}: the files' keys do not match"
                raise tsv.error(int(extra[0]), message)
        absent = wanted[~np.isin(wanted, tsv.ids)]
        if absent.size:
            row = main.row_of(int(absent[0]))
            raise InputError(
                f"no row for image {int(absent[0])} (row {row + 1} of {main.path.name}): the files' keys do not match",
                tsv.path,
            )


# ------------------------------------------------------------------------------------------------- categories
def _categories(
    annotations: Path | None, labels: LabelTsv | None, image_ids: list[int]
) -> tuple[list[dict], dict[str, int]]:
    """Category list and class-name → id map.

    With an instances file (`categories`) its ids are used, names matched case-insensitively; names it lacks get new
    ids after its largest, in sorted order. Otherwise the label names, sorted, get ids 1..K. One pass over the label
    rows of the images (streamed).
    """
    if labels is None:
        return [], {}
    names: set[str] = set()
    rows = sorted(labels.row_of(i) for i in image_ids)
    with progress_bar("import-regions: label names", len(rows)) as advance:
        for row in rows:
            names.update(labels.read_row(row).names)
            advance(1)
    known = _instances_categories(annotations)
    by_name = {c["name"].casefold(): c["id"] for c in known}
    category_of = {name: by_name[name.casefold()] for name in names if name.casefold() in by_name}
    extra = sorted(name for name in names if name not in category_of)
    start = max([c["id"] for c in known], default=0) + 1
    added = [{"id": start + k, "name": name} for k, name in enumerate(extra)]
    category_of.update({c["name"]: c["id"] for c in added})
    return known + added, category_of


def _instances_categories(annotations: Path | None) -> list[dict]:
    if annotations is None:
        return []
    data = read_json(annotations)
    categories = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(categories, list):
        return []
    result = []
    for c in categories:
        if isinstance(c, dict) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str):
            result.append({"id": int(c["id"]), "name": c["name"]})
    return result


# ---------------------------------------------------------------------------------------------------- writing
def _write(cfg: ImportConfig, sources: VinvlSources, refs, image_ids: list[int],
           categories: list[dict]) -> ImportResult:  # fmt: skip
    import torch

    from vlkd_cli.runtime import resolve_device, seed_everything

    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    main_dim = _probe_dim(sources.main, image_ids)
    if not sources.main.has_geometry and sources.labels is None:
        raise UsageError(
            f"{sources.main.path}: {main_dim}-d features without the 6-d box geometry (2048 + 6 layout): "
            "the boxes must come from --labels"
        )
    backbone = _other_backbone(cfg, device)
    other_dim = sum(backbone.feature_channels) if backbone is not None else _probe_dim(sources.other, image_ids)
    dims = {cfg.side: main_dim, cfg.other: other_dim}
    writer = RegionsWriter(cfg.out, student_dim=dims["student"], teacher_dim=dims["teacher"],
                           feature_dtype=cfg.feature_dtype)  # fmt: skip
    totals = {"images": 0, "regions": 0, "empty": 0}
    image_size = None
    try:
        with torch.inference_mode(), progress_bar("import-regions", len(image_ids)) as advance:
            if backbone is not None:
                from vlkd_cli.stages.extract_regions import DEFAULT_IMAGE_SIZE

                image_size = cfg.image_size or DEFAULT_IMAGE_SIZE
                chunks = _pooled_chunks(refs, sources, backbone, image_size, cfg, device)
            else:
                chunks = tsv_chunks(image_ids, sources, cfg.batch_size)
            for chunk in chunks:
                for image in chunk:
                    _add(writer, image, cfg.side, totals)
                advance(len(chunk))
        metadata = _metadata(cfg, sources, backbone, categories, image_size, refs)
        key = writer.finish(metadata)
    finally:
        writer.close()
    unused = sources.main.num_rows - len(image_ids)
    box_source = "labels" if sources.labels is not None else "geometry"
    return ImportResult(cfg.out, totals["images"], totals["regions"], totals["empty"], key, len(categories),
                        sources.counts["clipped"], unused, box_source, dict(sources.size_sources))  # fmt: skip


def _probe_dim(tsv: FeatureTsv, image_ids: list[int]) -> int:
    """The kept feature dimension of a TSV, read from its first image (of the import) that has boxes."""
    tsv.probe([tsv.row_of(i) for i in image_ids])
    if tsv.feature_dim is None:
        raise InputError("none of the imported images has a box: the feature dimension is unknown", tsv.path)
    return tsv.feature_dim


def _other_backbone(cfg: ImportConfig, device):
    """The other side's timm backbone, seeded as extract-regions seeds that side (student seed, teacher seed + 1)."""
    name = cfg.of("backbone", cfg.other)
    if name is None:
        return None
    from vlkd_cli.vision.backbone import create_backbone

    seed = cfg.seed if cfg.other == "student" else cfg.seed + 1
    backbone = create_backbone(
        name, weights=cfg.of("backbone_weights", cfg.other), pretrained=cfg.pretrained, seed=seed
    )
    return backbone.to(device).eval()


def _add(writer: RegionsWriter, image: VinvlImage, side: str, totals: dict[str, int]) -> None:
    sides = {side: image.features, ("student" if side == "teacher" else "teacher"): image.other}
    writer.add(image.image_id, image.size, image.boxes, image.scores, image.labels,
               sides["student"], sides["teacher"])  # fmt: skip
    totals["images"] += 1
    totals["regions"] += len(image.boxes)
    totals["empty"] += len(image.boxes) == 0


def _pooled_chunks(refs: list[ImageRef], sources: VinvlSources, backbone, image_size: int, cfg: ImportConfig,
                   device) -> Iterator[list[VinvlImage]]:  # fmt: skip
    """Per batch of decoded images: assemble the TSV regions, then pool the backbone's RoI features on their boxes
    exactly as extract-regions does (same resize, padding, channels_last maps and RoIAlign)."""
    import torch

    from vlkd_cli.data.batching import DecodeStats, iter_batches
    from vlkd_cli.vision.roi import pooled_roi_features

    stats = DecodeStats(skipped=[])
    for batch in iter_batches(refs, image_size=image_size, batch_size=cfg.batch_size, skip_bad_images=False,
                              stats=stats):  # fmt: skip
        images = [assemble_image(ref.image_id, sources, size) for ref, size in zip(batch.refs, batch.sizes)]
        pixels = batch.pixels.to(device).contiguous(memory_format=torch.channels_last)
        maps = backbone(backbone.preprocess(pixels))  # L x (B, C_l, H_l, W_l)
        boxes = [image.boxes for image in images]
        pooled = pooled_roi_features(maps, backbone.feature_strides, batch, boxes, cfg.roi_size)  # (R, D')
        start = 0
        for image in images:
            image.other = pooled[start : start + len(image.boxes)]  # (n, D')
            start += len(image.boxes)
        yield images


# ---------------------------------------------------------------------------------------------------- lineage
def _metadata(cfg: ImportConfig, sources: VinvlSources, backbone, categories, image_size, refs) -> dict[str, str]:
    def tsv_record(tsv: TsvFile, kind: str, side: str | None = None) -> dict[str, str]:
        record = {"path": str(tsv.path), "kind": kind, "sha256": tsv.sha256, "format": cfg.format}
        return {**record, "side": side} if side else record

    inputs = [tsv_record(sources.main, "features", cfg.side)]
    if sources.labels is not None:
        inputs.append(tsv_record(sources.labels, "labels"))
    if sources.hw is not None:
        inputs.append(tsv_record(sources.hw, "image_sizes"))
    if sources.other is not None:
        inputs.append(tsv_record(sources.other, "features", cfg.other))
    if refs is not None and cfg.images is not None:
        from vlkd_cli.data.image_index import image_list_sha256

        inputs.append({"path": str(cfg.images), "kind": "images", "sha256": image_list_sha256(refs)})
    if cfg.annotations is not None:
        inputs.append(input_record(cfg.annotations, "annotations"))
    weights = cfg.of("backbone_weights", cfg.other)
    if weights is not None:
        inputs.append(input_record(weights, "backbone_weights"))
    boxes_from = sources.labels if sources.labels is not None else sources.main
    extra = {
        f"vlkd.{cfg.side}_backbone": cfg.extractor,
        f"vlkd.{cfg.side}_backbone_sha256": "",
        f"vlkd.{cfg.other}_backbone": backbone.name if backbone is not None else cfg.other_extractor,
        f"vlkd.{cfg.other}_backbone_sha256": backbone.weights_sha256 if backbone is not None else "",
        "vlkd.categories": json.dumps(categories),
        "vlkd.proposals": f"{cfg.format}:{boxes_from.sha256}",
        "vlkd.import_format": cfg.format,
        "vlkd.import_side": cfg.side,
        "vlkd.shard": "0/1",
    }
    if backbone is not None:
        extra.update({"vlkd.image_size": str(image_size), "vlkd.roi_size": str(cfg.roi_size)})
    config = {**asdict(cfg), "image_size": image_size}
    return build_metadata("regions", command="import-regions", config=config, inputs=inputs, extra=extra)
