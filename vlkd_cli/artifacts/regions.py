"""The `regions` artifact: student boxes with student and teacher RoI features on the SAME boxes.

Layout (flat + offsets, see `schema.SPECS["regions"]`): regions of image i are rows offsets[i]:offsets[i+1].
The alignment key `vlkd.boxes_sha256` is sha256 over the per-image digests sha256(id, count, boxes), in image
order. Because it is built from per-image digests (stored as `box_digests`), a shard set has the same key as
the single file of the same images, and readers compute it from the small digests, never from the boxes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlkd_cli.artifacts.atomic import naming_target, temp_sibling
from vlkd_cli.artifacts.io import open_artifact, write_artifact
from vlkd_cli.artifacts.shards import resolve_shards
from vlkd_cli.artifacts.writer import TensorBuilder, pending_from_array
from vlkd_cli.errors import InputError

# Metadata every regions set given together must agree on (and both feature dimensions).
SET_KEYS = (
    "vlkd.student_backbone", "vlkd.student_backbone_sha256", "vlkd.teacher_backbone", "vlkd.teacher_backbone_sha256",
    "vlkd.categories",
)  # fmt: skip
# Metadata every shard of one set must agree on.
SHARED_KEYS = (
    "vlkd.student_backbone", "vlkd.student_backbone_sha256", "vlkd.teacher_backbone", "vlkd.teacher_backbone_sha256",
    "vlkd.categories", "vlkd.proposals",
)  # fmt: skip
CHECK_CHUNK_ROWS = 1 << 16  # feature rows scanned at once by Regions.check_finite (~256 MiB of 2048-d fp16)
BOX_TOLERANCE = 1.0  # pixels a box may reach past the image border (rounding of detector outputs)


def image_box_digest(image_id: int, boxes: np.ndarray) -> bytes:
    """sha256 of the image id, region count and float32 boxes: one image's part of the alignment key."""
    boxes = np.ascontiguousarray(boxes, dtype="<f4")
    header = np.array([image_id, boxes.shape[0]], dtype="<i8").tobytes()
    return hashlib.sha256(header + boxes.tobytes()).digest()


def boxes_sha256(digests: np.ndarray) -> str:
    """The alignment key over (I, 32) per-image digests."""
    return hashlib.sha256(np.ascontiguousarray(digests, dtype=np.uint8).tobytes()).hexdigest()


class RegionsWriter:
    """Stream images' regions into a `regions` artifact; memory does not grow with the number of regions."""

    def __init__(self, path: Path, *, student_dim: int, teacher_dim: int, feature_dtype: str = "float16") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_sibling(self.path, directory=True)  # swept by the next run if this one is killed
        dtype = np.dtype(feature_dtype)
        self._builders = {
            "boxes": TensorBuilder(self._tmp / "boxes", "boxes", np.float32, (4,)),
            "scores": TensorBuilder(self._tmp / "scores", "scores", np.float32, ()),
            "labels": TensorBuilder(self._tmp / "labels", "labels", np.int64, ()),
            "student_features": TensorBuilder(self._tmp / "sf", "student_features", dtype, (student_dim,)),
            "teacher_features": TensorBuilder(self._tmp / "tf", "teacher_features", dtype, (teacher_dim,)),
        }
        self._ids: list[int] = []
        self._sizes: list[tuple[int, int]] = []
        self._counts: list[int] = []
        self._digests: list[bytes] = []

    def add(self, image_id: int, size: tuple[int, int], boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
            student_features: np.ndarray, teacher_features: np.ndarray) -> None:  # fmt: skip
        """Append one image: boxes (n, 4) xyxy pixels, scores (n,), labels (n,), features (n, Ds) and (n, Dt)."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        parts = {"boxes": boxes, "scores": scores, "labels": labels,
                 "student_features": student_features, "teacher_features": teacher_features}  # fmt: skip
        for name, rows in parts.items():
            builder = self._builders[name]
            with np.errstate(over="ignore"):  # an overflow to inf is reported below
                rows = np.asarray(rows, dtype=builder.dtype)
            if rows.shape[0] != boxes.shape[0]:
                raise ValueError(f"image {image_id}: {rows.shape[0]} {name} rows for {boxes.shape[0]} boxes")
            if rows.dtype.kind == "f" and not np.isfinite(rows).all():
                raise InputError(
                    f"image {image_id}: non-finite {name}"
                    + (" after the cast to float16; use --feature-dtype float32" if rows.dtype == np.float16 else ""),
                    self.path,
                )
            try:
                builder.append(rows)
            except OSError as err:  # e.g. ENOSPC: name the output, not the temp
                raise naming_target(err, self._tmp, self.path) from err
        self._ids.append(int(image_id))
        self._sizes.append((int(size[0]), int(size[1])))
        self._counts.append(boxes.shape[0])
        self._digests.append(image_box_digest(image_id, boxes))

    def finish(self, metadata: dict[str, str]) -> str:
        """Write the artifact atomically; return its `vlkd.boxes_sha256`."""
        try:
            digests = np.frombuffer(b"".join(self._digests), dtype=np.uint8).reshape(-1, 32)
            key = boxes_sha256(digests)
            try:
                finished = [builder.finish() for builder in self._builders.values()]
            except OSError as err:
                raise naming_target(err, self._tmp, self.path) from err
            tensors = finished + [
                pending_from_array("offsets", np.concatenate([[0], np.cumsum(self._counts)]).astype(np.int64)),
                pending_from_array("image_ids", np.asarray(self._ids, dtype=np.int64)),
                pending_from_array("image_sizes", np.asarray(self._sizes, dtype=np.int64).reshape(-1, 2)),
                pending_from_array("box_digests", digests),
            ]
            write_artifact(self.path, tensors, {**metadata, "vlkd.boxes_sha256": key})
            return key
        finally:
            self.close()

    def close(self) -> None:
        """Drop the temp files (called on success and on failure)."""
        for builder in self._builders.values():
            builder.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


@dataclass(frozen=True)
class ImageRegions:
    """The regions of one image. Boxes are xyxy in pixels of the decoded image of size (height, width)."""

    image_id: int
    size: tuple[int, int]
    boxes: np.ndarray  # (n, 4) float32
    scores: np.ndarray  # (n,) float32
    labels: np.ndarray  # (n,) int64
    student_features: np.ndarray | None  # (n, Ds)
    teacher_features: np.ndarray | None  # (n, Dt)


class _Shard:
    """One file of a set: its small index tensors in memory, features memory-mapped."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        self.path = path
        self.header = open_artifact(path, "regions")
        self.handle = safe_open(str(path), framework="np")
        small = ("boxes", "scores", "labels", "offsets", "image_ids", "image_sizes", "box_digests")
        self.arrays = {name: self.handle.get_tensor(name) for name in small}

    def features(self, name: str, begin: int, end: int, image_id: int | None = None) -> np.ndarray:
        if begin == end:  # safetensors refuses an empty slice at the end of a tensor
            info = self.header.tensors[name]
            return np.zeros((0, *info.shape[1:]), dtype=np.float16 if info.dtype == "F16" else np.float32)
        rows = self.handle.get_slice(name)[begin:end]
        if not np.isfinite(rows).all():
            where = f" of image {image_id}" if image_id is not None else ""
            raise InputError(f"non-finite values in {name}{where} (rows {begin}:{end})", self.path)
        return rows

    def check_finite(self, name: str, images: np.ndarray) -> None:
        """Scan the feature rows of `images` (local indices, sorted) in chunks; InputError naming the first image
        whose rows hold a NaN or an infinity."""
        offsets = self.arrays["offsets"]
        for begin, end in _row_runs(offsets, images):
            for start in range(begin, end, CHECK_CHUNK_ROWS):
                stop = min(end, start + CHECK_CHUNK_ROWS)
                bad = ~np.isfinite(self.handle.get_slice(name)[start:stop]).all(axis=1)  # (rows,)
                if bad.any():
                    row = start + int(np.flatnonzero(bad)[0])
                    i = int(np.searchsorted(offsets, row, side="right") - 1)
                    first, last = int(offsets[i]), int(offsets[i + 1])
                    raise InputError(f"non-finite values in {name} of image {int(self.arrays['image_ids'][i])} "
                                     f"(rows {first}:{last})", self.path)  # fmt: skip


def _row_runs(offsets: np.ndarray, images: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous row ranges [begin, end) covering the regions of `images` (sorted local indices)."""
    runs: list[tuple[int, int]] = []
    for i in images.tolist():
        begin, end = int(offsets[i]), int(offsets[i + 1])
        if begin == end:
            continue
        if runs and runs[-1][1] == begin:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((begin, end))
    return runs


class Regions:
    """One or several `regions` artifacts — each one file or a complete shard set — read as one set of images,
    memory-mapped.

    Index tensors (boxes, offsets, ids...) are loaded and checked at open; features are read per image on demand.
    Several sets (`--regions train.safetensors --regions val.safetensors`) must share both backbones (names and
    weights), both feature dimensions and the categories, and hold disjoint images. Their alignment key
    (`boxes_sha256`) is the key of the one set, or for several sets `multiset_key` of theirs (independent of
    their order); `key_for(positions)` gives the key of the sets that hold some images, e.g. a run's training
    images, which is what teacher adaptation records and distillation checks.
    """

    def __init__(self, path: Path | str | Sequence[Path | str]) -> None:
        paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
        if not paths:
            raise InputError("no regions artifact given")
        self.path = paths[0]  # named in messages that concern the whole set
        self.sources = paths  # the arguments, one per set
        self._sets = [[_Shard(p) for p in resolve_shards(source)] for source in paths]
        self._shards = [shard for shards in self._sets for shard in shards]
        self._set_of = np.repeat(np.arange(len(self._sets)), [sum(len(s.arrays["image_ids"]) for s in shards)
                                                              for shards in self._sets])  # (I,) set of each image
        for shards in self._sets:
            _check_agree(shards, SHARED_KEYS)
        _check_agree([shards[0] for shards in self._sets], SET_KEYS, dims=True)
        self.metadata = self._shards[0].header.metadata
        self.image_ids = np.concatenate([s.arrays["image_ids"] for s in self._shards])  # (I,)
        self.image_sizes = np.concatenate([s.arrays["image_sizes"] for s in self._shards])  # (I, 2)
        self.set_keys = [_set_key(shards) for shards in self._sets]
        self.boxes_sha256 = self.set_keys[0] if len(self._sets) == 1 else multiset_key(self.set_keys)
        self._locate = [(k, i) for k, s in enumerate(self._shards) for i in range(len(s.arrays["image_ids"]))]
        self._index = {int(image_id): n for n, image_id in enumerate(self.image_ids)}
        if len(self._index) != len(self.image_ids):
            self._refuse_duplicates()
        for shard in self._shards:
            _check_values(shard)

    @property
    def paths(self) -> list[Path]:
        return [s.path for s in self._shards]

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_regions(self) -> int:
        return sum(int(s.arrays["offsets"][-1]) for s in self._shards)

    @property
    def student_dim(self) -> int:
        return self._shards[0].header.tensors["student_features"].shape[1]

    @property
    def teacher_dim(self) -> int:
        return self._shards[0].header.tensors["teacher_features"].shape[1]

    @property
    def categories(self) -> list[dict]:
        return json.loads(self.metadata.get("vlkd.categories", "[]"))

    def key_for(self, positions: Iterable[int]) -> str:
        """The alignment key of the sets that hold the images at `positions` (all sets when none is given)."""
        used = sorted({int(self._set_of[n]) for n in positions}) or list(range(len(self._sets)))
        keys = [self.set_keys[k] for k in used]
        return keys[0] if len(keys) == 1 else multiset_key(keys)

    def sources_of(self, positions: Iterable[int]) -> list[Path]:
        """The `--regions` arguments whose sets hold the images at `positions`."""
        return [self.sources[k] for k in sorted({int(self._set_of[n]) for n in positions})]

    def index_of(self, image_id: int) -> int:
        """Position of an image id; InputError if absent."""
        try:
            return self._index[int(image_id)]
        except KeyError:
            where = "this artifact" if len(self.sources) == 1 else f"these {len(self.sources)} regions artifacts"
            raise InputError(f"image id {image_id} has no regions in {where}", self.path) from None

    def image(self, n: int, *, student: bool = True, teacher: bool = True) -> ImageRegions:
        """The regions of the n-th image (features read from disk only when asked)."""
        k, i = self._locate[n]
        shard = self._shards[k]
        begin, end = int(shard.arrays["offsets"][i]), int(shard.arrays["offsets"][i + 1])
        image_id = int(shard.arrays["image_ids"][i])
        return ImageRegions(
            image_id=image_id,
            size=tuple(int(v) for v in shard.arrays["image_sizes"][i]),
            boxes=shard.arrays["boxes"][begin:end],
            scores=shard.arrays["scores"][begin:end],
            labels=shard.arrays["labels"][begin:end],
            student_features=shard.features("student_features", begin, end, image_id) if student else None,
            teacher_features=shard.features("teacher_features", begin, end, image_id) if teacher else None,
        )

    def check_finite(self, side: str, images: Iterable[int] | None = None) -> None:
        """Every `side` ("student" or "teacher") feature row of `images` (positions, default: all) is finite.

        Features are memory-mapped and otherwise checked only when an image is read, so a run that would reach a
        corrupt image late (or never) is stopped before it starts; the scan reads each row once, in chunks.

        Raises:
            InputError: naming the file and the first image whose features hold a NaN or an infinity.
        """
        wanted = np.arange(self.num_images) if images is None else np.unique(np.fromiter(images, dtype=np.int64))
        locate = np.asarray(self._locate, dtype=np.int64).reshape(-1, 2)  # (I, 2): shard, local index
        for k, shard in enumerate(self._shards):
            local = np.sort(locate[wanted][locate[wanted][:, 0] == k][:, 1])
            shard.check_finite(f"{side}_features", local)

    def _refuse_duplicates(self) -> None:
        ids, counts = np.unique(self.image_ids, return_counts=True)
        twice = ids[counts > 1]
        first = np.flatnonzero(self.image_ids == twice[0])  # the positions of the first duplicated id
        sets = sorted({int(self._set_of[n]) for n in first})
        if len(sets) > 1:
            a, b = (self.sources[k] for k in sets[:2])
            raise InputError(f"image id {int(twice[0])} is in two regions artifacts: {a} and {b}"
                             + (f" ({len(twice)} such images)" if len(twice) > 1 else ""), a)  # fmt: skip
        shown = ", ".join(str(int(i)) for i in twice[:5]) + (", ..." if len(twice) > 5 else "")
        raise InputError(f"duplicate image ids across the regions (ids {shown})", self.sources[sets[0]])


def multiset_key(keys: Sequence[str]) -> str:
    """The alignment key of several regions sets: sha256 over their sorted keys (the order they are given in does
    not matter; one set's key is its own)."""
    return hashlib.sha256(("vlkd.regions-set\n" + "\n".join(sorted(keys))).encode()).hexdigest()


def _set_key(shards: list[_Shard]) -> str:
    """One file's `vlkd.boxes_sha256`, or a shard set's key over the digests of all its images (the same as the
    single file of those images would have)."""
    if len(shards) == 1:
        return shards[0].header.metadata["vlkd.boxes_sha256"]
    return boxes_sha256(np.concatenate([s.arrays["box_digests"] for s in shards]))


def _check_agree(shards: list[_Shard], keys: tuple[str, ...], *, dims: bool = False) -> None:
    """The metadata `keys` (and with `dims`, both feature dimensions) of every shard equal the first's."""
    first = shards[0]
    for shard in shards[1:]:
        for key in keys:
            if shard.header.get(key) != first.header.get(key):
                raise InputError(f"disagrees with {first.path} on {key}: {shard.header.get(key)!r} vs "
                                 f"{first.header.get(key)!r}", shard.path)  # fmt: skip
        for name in ("student_features", "teacher_features") if dims else ():
            mine, theirs = shard.header.tensors[name].shape[1], first.header.tensors[name].shape[1]
            if mine != theirs:
                raise InputError(f"{name} are {mine}-d, those of {first.path} {theirs}-d", shard.path)


def _check_values(shard: _Shard) -> None:
    """Offsets, ids and boxes must make sense: boxes finite, ordered and inside their images."""
    a, path = shard.arrays, shard.path
    offsets, boxes = a["offsets"], a["boxes"]
    if offsets[0] != 0 or offsets[-1] != len(boxes) or (np.diff(offsets) < 0).any():
        raise InputError("offsets are not a non-decreasing cover of the regions", path)
    if not np.isfinite(boxes).all() or not np.isfinite(a["scores"]).all():
        raise InputError("non-finite boxes or scores", path)
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise InputError("boxes with x2 < x1 or y2 < y1", path)
    if (a["image_sizes"] <= 0).any():
        raise InputError("non-positive image sizes", path)
    counts = np.diff(offsets)
    heights = np.repeat(a["image_sizes"][:, 0], counts)
    widths = np.repeat(a["image_sizes"][:, 1], counts)
    outside = (boxes[:, :2] < -BOX_TOLERANCE).any(1) | (boxes[:, 2] > widths + BOX_TOLERANCE) | (
        boxes[:, 3] > heights + BOX_TOLERANCE
    )
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        image = int(np.searchsorted(offsets, row, side="right") - 1)
        raise InputError(f"box {boxes[row].tolist()} lies outside image {int(a['image_ids'][image])}", path)
