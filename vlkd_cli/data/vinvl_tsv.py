"""VinVL / Oscar TSV files: region features, detector labels and image sizes, with `.lineidx` random access.

The public formats reproduced here (read, never copied, from microsoft/Oscar `oscar/utils/tsv_file.py`,
`oscar/run_captioning.py`, `oscar/run_vqa.py`, `oscar/datasets/oscar_tsv.py` and microsoft/scene_graph_benchmark
`tools/mini_tsv`):

- A TSV row is one line of tab-separated columns, each stripped of surrounding white space; column 0 is the image
  key (a COCO id such as `391895`, or a name such as `000000522418` / `COCO_val2014_000000391895.jpg`).
- `X.lineidx` beside `X.tsv` (the extension `.tsv` replaced: `train.feature.tsv` → `train.feature.lineidx`) holds one
  decimal byte offset per row: where the row starts (Oscar seeks with it). Here every TSV is read once sequentially
  anyway (for its sha256), which yields the offsets; a `.lineidx` present must list exactly those (else stale).
- Feature rows come in two layouts, detected per file from its first row:
  `key \\t {"num_boxes": N, "features": B64}` (captioning) or `key \\t N \\t B64` (VQA, retrieval, pretraining),
  where B64 is the standard base64 of N × D little-endian float32 values, row-major (D = 2054 for VinVL: 2048
  detector features followed by the 6-d box geometry x1/W, y1/H, x2/W, y2/H, w/W, h/H).
- Label rows: `key \\t [{"class": NAME, "rect": [x1, y1, x2, y2], "conf": SCORE, ...}, ...]` (rects in pixels,
  `conf` optional), or `key \\t {"objects": [...], "image_h": H, "image_w": W}` (the pretraining corpus).
- Image-size rows (`hw.tsv`): `key \\t [{"height": H, "width": W}]`.

Rows are numbered from 1 in messages (the line number). Every problem with a file is an `InputError` naming the
file and the row.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlkd_cli.data.images import image_id_from_filename
from vlkd_cli.errors import InputError, UsageError

GEOMETRY_DIM = 6  # x1/W, y1/H, x2/W, y2/H, w/W, h/H
VINVL_FEATURE_DIM = 2048
VINVL_ROW_DIM = VINVL_FEATURE_DIM + GEOMETRY_DIM  # 2054
GEOMETRY_TOLERANCE = 1e-3  # |(x2/W - x1/W) - w/W| allowed in the stored geometry (float32 rounding)
TSV_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
_KEY_PROBE = 512  # bytes read at a row start to find its key
_BLOCK = 8 << 20  # bytes per read of the sequential pass
_NEWLINE = 0x0A


def lineidx_path(tsv: Path) -> Path:
    """The `.lineidx` beside a TSV, named as Oscar's `TSVFile` does (`op.splitext(tsv)[0] + '.lineidx'`)."""
    return Path(tsv).with_suffix(".lineidx")


def image_id_from_key(key: str) -> int | None:
    """The image id of a row key: the key itself if it is a number, else the number at the end of its stem."""
    key = key.strip()
    if key.isdigit():
        return int(key)
    return image_id_from_filename(key)


class TsvFile:
    """A TSV file opened for random access by row and by image id.

    Opening reads the file once, sequentially, in large blocks: that pass computes its sha256 (the lineage needs it)
    and the byte offset of every row. A `.lineidx` beside the file must list exactly those offsets (a stale index,
    e.g. one missing rows or left from an older file, is exit 3); without one the offsets are simply used (nothing
    is written beside the inputs). The keys are then read at each row start. Memory: two int64 per row; no row
    content is kept.

    Attributes:
        path: The TSV.
        what: How messages name the file's role (e.g. "label TSV").
        offsets: (rows,) int64 byte offset of each row.
        ids: (rows,) int64 image id of each row.
        indexed: Whether a `.lineidx` was present (and checked).
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        if not self.path.is_file():
            raise UsageError(f"{what} does not exist", self.path)
        self.size = self.path.stat().st_size
        self._handle = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        self.indexed = lineidx_path(self.path).is_file()
        try:
            self.offsets, self.sha256 = self._scan()
            if len(self.offsets) == 0:
                raise InputError(f"{what} has no rows", self.path)
            if self.indexed:
                _check_lineidx(lineidx_path(self.path), self.offsets)
            rows = range(len(self.offsets))
            self.ids = np.fromiter((self._id_of(r, self._key_at(r)) for r in rows), dtype=np.int64, count=len(rows))
            self._order = np.argsort(self.ids, kind="stable")
            self._sorted = self.ids[self._order]
            self._check_unique_ids()
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------------------------------------------- index
    def _scan(self) -> tuple[np.ndarray, str]:
        """Row start offsets (what Oscar's generate_lineidx_file writes) and the sha256, from one sequential pass."""
        digest = hashlib.sha256()
        starts = [np.zeros(1, dtype=np.int64)]
        position = 0
        self._handle.seek(0)
        while block := self._handle.read(_BLOCK):
            digest.update(block)
            newlines = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == _NEWLINE)
            starts.append(newlines.astype(np.int64) + position + 1)
            position += len(block)
        offsets = np.concatenate(starts)
        return offsets[offsets < self.size], digest.hexdigest()

    def _key_of_line(self, row: int, line: bytes) -> str:
        if not line.strip():
            raise InputError(f"row {row + 1} is empty", self.path)
        head = line.split(b"\t", 1)
        if len(head) == 1:
            raise InputError(f"row {row + 1} has no tab: expected `key<TAB>value`", self.path)
        return self._decode_key(row, head[0])

    def _key_at(self, row: int) -> str:
        """The key of a row: the bytes before its first tab."""
        self._handle.seek(int(self.offsets[row]))
        probe = self._handle.read(_KEY_PROBE)
        while b"\t" not in probe and b"\n" not in probe and len(probe) < (1 << 16):
            more = self._handle.read(_KEY_PROBE)
            if not more:
                break
            probe += more
        return self._key_of_line(row, probe.split(b"\n", 1)[0])

    def _decode_key(self, row: int, raw: bytes) -> str:
        try:
            key = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InputError(f"row {row + 1}: the key is not UTF-8 text", self.path) from None
        if not key:
            raise InputError(f"row {row + 1} has an empty key", self.path)
        return key

    def _id_of(self, row: int, key: str) -> int:
        image_id = image_id_from_key(key)
        if image_id is None:
            raise InputError(
                f"row {row + 1} (key {key!r}): no image id (the key must be a number or end with one)", self.path
            )
        return image_id

    def _check_unique_ids(self) -> None:
        same = np.flatnonzero(self._sorted[1:] == self._sorted[:-1])
        if same.size:
            first, second = sorted(int(r) for r in self._order[same[0] : same[0] + 2])
            raise InputError(
                f"rows {first + 1} and {second + 1} are both image {int(self._sorted[same[0]])}", self.path
            )

    # ------------------------------------------------------------------------------------------------------ rows
    @property
    def num_rows(self) -> int:
        return len(self.offsets)

    def row_of(self, image_id: int) -> int | None:
        """The row index of an image id, or None when the file has no row for it."""
        at = int(np.searchsorted(self._sorted, image_id))
        if at < len(self._sorted) and self._sorted[at] == image_id:
            return int(self._order[at])
        return None

    def columns(self, row: int) -> list[str]:
        """The stripped columns of a row (which must still end where the next one starts)."""
        self._handle.seek(int(self.offsets[row]))
        line = self._handle.readline()
        expected = int(self.offsets[row + 1]) if row + 1 < len(self.offsets) else self.size
        if self._handle.tell() != expected:
            raise InputError(f"row {row + 1} moved: the file changed while it was being imported", self.path)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise self.error(row, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
        return [column.strip() for column in text.split("\t")]

    def error(self, row: int, message: str) -> InputError:
        """An InputError naming this file, the row (1-based) and its key."""
        return InputError(f"row {row + 1} (image {int(self.ids[row])}): {message}", self.path)

    def json_column(self, row: int, columns: list[str], index: int = 1) -> Any:
        """Parse column `index` of a row as JSON."""
        if len(columns) <= index:
            raise self.error(row, f"expected at least {index + 1} tab-separated columns, found {len(columns)}")
        try:
            return json.loads(columns[index])
        except json.JSONDecodeError as err:
            raise self.error(row, f"column {index + 1} is not valid JSON ({err.msg} at character {err.pos})") from None

    def close(self) -> None:
        self._handle.close()


def _check_lineidx(path: Path, offsets: np.ndarray) -> None:
    """A `.lineidx` must list exactly the row offsets of its TSV, one decimal integer per line."""
    listed: list[int] = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                listed.append(int(text))
            except ValueError:
                raise InputError(f"line {number} is not a byte offset: {text[:40]!r}", path) from None
    stale = "stale index (delete it to rebuild it from the file)"
    common = min(len(listed), len(offsets))
    differ = np.flatnonzero(np.asarray(listed[:common], dtype=np.int64) != offsets[:common])
    if differ.size:
        row = int(differ[0])
        raise InputError(
            f"row {row + 1} starts at byte {int(offsets[row])} of the TSV, the .lineidx says {listed[row]}: {stale}",
            path,
        )
    if len(listed) != len(offsets):
        raise InputError(f"the .lineidx indexes {len(listed)} rows, the TSV has {len(offsets)}: {stale}", path)


# ------------------------------------------------------------------------------------------------------- features
def decode_features(text: str, num_boxes: int, dtype: np.dtype = TSV_DTYPES["float32"]) -> np.ndarray:
    """Decode a base64 feature blob of `num_boxes` rows.

    Args:
        text: Standard base64 (with padding) of num_boxes × D little-endian values.
        num_boxes: The row count stated by the file.
        dtype: Element type of the blob (float32 in every public release).

    Returns:
        (num_boxes, D) float32; (0, 0) when num_boxes is 0.

    Raises:
        ValueError: Invalid base64, a byte count that does not split into num_boxes rows, or non-finite values.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"the features are not valid base64 ({err})") from None
    if num_boxes == 0:
        if raw:
            raise ValueError(f"num_boxes is 0 but the features hold {len(raw)} bytes")
        return np.zeros((0, 0), dtype=np.float32)
    row_bytes, remainder = divmod(len(raw), num_boxes)
    if remainder or row_bytes % dtype.itemsize or row_bytes == 0:
        raise ValueError(
            f"{len(raw)} bytes of features do not split into {num_boxes} boxes of {dtype.name} values "
            f"(wrong num_boxes or a truncated blob)"
        )
    features = np.frombuffer(raw, dtype=dtype).reshape(num_boxes, row_bytes // dtype.itemsize).astype(np.float32)
    bad = ~np.isfinite(features)
    if bad.any():
        box, column = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"non-finite feature value {features[box, column]} (box {box}, column {column})")
    return features


def check_geometry(geometry: np.ndarray) -> str | None:
    """Why (N, 6) values are not the x1/W, y1/H, x2/W, y2/H, w/W, h/H geometry, or None when they are."""
    if geometry.size == 0:
        return None
    width = geometry[:, 2] - geometry[:, 0]
    height = geometry[:, 3] - geometry[:, 1]
    wrong = (np.abs(width - geometry[:, 4]) > GEOMETRY_TOLERANCE) | (
        np.abs(height - geometry[:, 5]) > GEOMETRY_TOLERANCE
    )
    wrong |= (geometry < -GEOMETRY_TOLERANCE).any(axis=1) | (geometry > 1 + GEOMETRY_TOLERANCE).any(axis=1)
    wrong |= (width < -GEOMETRY_TOLERANCE) | (height < -GEOMETRY_TOLERANCE)
    if not wrong.any():
        return None
    box = int(np.flatnonzero(wrong)[0])
    values = ", ".join(f"{v:.4g}" for v in geometry[box])
    return (
        f"the last 6 values of box {box} ({values}) are not the box geometry x1/W, y1/H, x2/W, y2/H, w/W, h/H "
        "of the 2048 + 6 layout"
    )


class FeatureTsv(TsvFile):
    """A `*.feature.tsv`: per image, N region features, split into 2048 + 6 when D = 2054.

    Attributes:
        layout: "json" (`key, {"num_boxes", "features"}`) or "columns" (`key, num_boxes, features`).
        dtype: Element type of the base64 blobs.
        row_dim: D of the file (set by the first row with boxes).
    """

    def __init__(self, path: Path, what: str = "feature TSV", dtype: str = "float32") -> None:
        if dtype not in TSV_DTYPES:
            raise UsageError(f"the TSV dtype must be one of {sorted(TSV_DTYPES)}, got {dtype!r}")
        super().__init__(path, what)
        self.dtype = TSV_DTYPES[dtype]
        self.row_dim: int | None = None
        self.layout = self._detect_layout(self.columns(0))

    def _detect_layout(self, columns: list[str]) -> str:
        if len(columns) == 2 and columns[1].startswith("{"):
            return "json"
        if len(columns) == 3:
            return "columns"
        raise self.error(
            0,
            f'{len(columns)} columns: expected `key<TAB>{{"num_boxes": N, "features": BASE64}}` or '
            "`key<TAB>N<TAB>BASE64`",
        )

    @property
    def has_geometry(self) -> bool:
        """Whether rows are the VinVL 2048 + 6 layout (known once a row with boxes has been read)."""
        return self.row_dim == VINVL_ROW_DIM

    @property
    def feature_dim(self) -> int | None:
        """Dimension of the features kept (2048 for the 2048 + 6 layout)."""
        if self.row_dim is None:
            return None
        return self.row_dim - GEOMETRY_DIM if self.has_geometry else self.row_dim

    def probe(self, rows: list[int]) -> int | None:
        """Read rows until one has boxes; return the file's row dimension D (None if none of them has boxes)."""
        for row in rows:
            if self.read_row(row)[0].shape[0]:
                return self.row_dim
        return self.row_dim

    def read_row(self, row: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Features (N, D') float32 of a row and its geometry (N, 6) in the 2048 + 6 layout (else None)."""
        num_boxes, blob = self._payload(row, self.columns(row))
        try:
            values = decode_features(blob, num_boxes, self.dtype)
        except ValueError as err:
            raise self.error(row, str(err)) from None
        if num_boxes == 0:
            dim = self.feature_dim if self.feature_dim is not None else VINVL_FEATURE_DIM
            return np.zeros((0, dim), np.float32), (
                np.zeros((0, GEOMETRY_DIM), np.float32) if self.has_geometry else None
            )
        self._check_dim(row, values.shape[1])
        if not self.has_geometry:
            return values, None
        geometry = values[:, VINVL_FEATURE_DIM:]
        reason = check_geometry(geometry)
        if reason:
            raise self.error(row, reason)
        return np.ascontiguousarray(values[:, :VINVL_FEATURE_DIM]), np.ascontiguousarray(geometry)

    def _check_dim(self, row: int, dim: int) -> None:
        if self.dtype == TSV_DTYPES["float32"] and dim * 2 == VINVL_ROW_DIM:
            raise self.error(
                row,
                f"{dim}-d float32 features: each box holds the bytes of 2054 float16 values (try --tsv-dtype float16)",
            )
        if self.row_dim is None:
            self.row_dim = dim
        if dim != self.row_dim:
            raise self.error(row, f"{dim}-d features, but earlier rows are {self.row_dim}-d")

    def _payload(self, row: int, columns: list[str]) -> tuple[int, str]:
        """num_boxes and the base64 blob of a row in the file's layout."""
        if self.layout == "json":
            if len(columns) != 2:
                raise self.error(row, f"{len(columns)} columns where the file's rows have 2 (key, JSON)")
            info = self.json_column(row, columns)
            if not isinstance(info, dict) or "num_boxes" not in info or "features" not in info:
                raise self.error(row, 'column 2 must be a JSON object with "num_boxes" and "features"')
            count, blob = info["num_boxes"], info["features"]
        else:
            if len(columns) != 3:
                raise self.error(row, f"{len(columns)} columns where the file's rows have 3 (key, num_boxes, base64)")
            count, blob = columns[1], columns[2]
            try:
                count = int(count)
            except ValueError:
                raise self.error(row, f"num_boxes {count[:20]!r} is not an integer") from None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise self.error(row, f"num_boxes must be a non-negative integer, found {count!r}")
        if not isinstance(blob, str):
            raise self.error(row, "the features must be a base64 string")
        return count, blob


# --------------------------------------------------------------------------------------------------------- labels
@dataclass(frozen=True)
class LabelRow:
    """The detector outputs of one image in a label TSV.

    Attributes:
        names: Class name of each box.
        rects: (n, 4) float32 xyxy pixels.
        scores: (n,) float32 `conf` (1 where absent).
        size: (height, width) when the row states it (`image_h`, `image_w`), else None.
    """

    names: list[str]
    rects: np.ndarray
    scores: np.ndarray
    size: tuple[int, int] | None


class LabelTsv(TsvFile):
    """A `*.label.tsv` (or a `predictions.tsv`): class, rect and conf per box."""

    def __init__(self, path: Path, what: str = "label TSV") -> None:
        super().__init__(path, what)

    def read_row(self, row: int) -> LabelRow:
        value = self.json_column(row, self.columns(row))
        size = None
        if isinstance(value, dict):
            if not isinstance(value.get("objects"), list):
                raise self.error(row, 'a JSON object row needs an "objects" list')
            if "image_h" in value or "image_w" in value:
                size = _size(value.get("image_h"), value.get("image_w"))
                if size is None:
                    raise self.error(row, f"invalid image_h/image_w {value.get('image_h')!r}/{value.get('image_w')!r}")
            value = value["objects"]
        if not isinstance(value, list):
            raise self.error(row, 'column 2 must be a JSON list of {"class", "rect", "conf"} objects')
        names, rects, scores = [], [], []
        for index, item in enumerate(value):
            name, rect, score = self._object(row, index, item)
            names.append(name)
            rects.append(rect)
            scores.append(score)
        return LabelRow(names, np.asarray(rects, np.float32).reshape(-1, 4), np.asarray(scores, np.float32), size)

    def _object(self, row: int, index: int, item: Any) -> tuple[str, list[float], float]:
        if not isinstance(item, dict):
            raise self.error(row, f"object {index} is not a JSON object")
        name, rect, score = item.get("class"), item.get("rect"), item.get("conf", 1.0)
        if not isinstance(name, str) or not name.strip():
            raise self.error(row, f'object {index} has no "class" name')
        if not isinstance(rect, list) or len(rect) != 4 or not all(_finite_number(v) for v in rect):
            raise self.error(row, f'object {index} ({name}) needs "rect": [x1, y1, x2, y2] of finite numbers')
        if not _finite_number(score):
            raise self.error(row, f'object {index} ({name}) has an invalid "conf" {score!r}')
        x1, y1, x2, y2 = (float(v) for v in rect)
        if x2 < x1 or y2 < y1:
            raise self.error(row, f"object {index} ({name}) has x2 < x1 or y2 < y1: {rect}")
        return name.strip(), [x1, y1, x2, y2], float(score)


class HwTsv(TsvFile):
    """A `*.hw.tsv`: the height and width of each image."""

    def __init__(self, path: Path, what: str = "image-size TSV") -> None:
        super().__init__(path, what)

    def read_row(self, row: int) -> tuple[int, int]:
        value = self.json_column(row, self.columns(row))
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        size = _size(value.get("height"), value.get("width")) if isinstance(value, dict) else None
        if size is None:
            raise self.error(row, f'expected [{{"height": H, "width": W}}] with positive integers, found {value!r:.80}')
        return size


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _size(height: Any, width: Any) -> tuple[int, int] | None:
    """(height, width) as positive integers, or None."""
    if not (_finite_number(height) and _finite_number(width)):
        return None
    if height != int(height) or width != int(width) or height <= 0 or width <= 0:
        return None
    return int(height), int(width)
