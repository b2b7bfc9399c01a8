"""Retrieval score matrices (`eval-retrieval --scores FILE`): a safetensors file from any tool with

- `scores` float (num_images, num_texts): higher = better match;
- `image_ids` int (num_images): the id of each row, unique;
- `text_image_ids` int (num_texts): the image each text (column) belongs to.

It may carry no vlkd metadata at all; a vlkd artifact must be of kind `eval` (an `eval-retrieval` output of a
cross-encoder holds exactly this layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlkd_cli.artifacts.header import read_header
from vlkd_cli.artifacts.schema import check_kind_and_version
from vlkd_cli.errors import InputError

TENSORS = {"scores": 2, "image_ids": 1, "text_image_ids": 1}


@dataclass(frozen=True)
class ScoreMatrix:
    scores: np.ndarray  # (I, T) float32 or float64, as stored
    image_ids: np.ndarray  # (I,) int64
    text_image_ids: np.ndarray  # (T,) int64


def _check_header(path: Path) -> None:
    header = read_header(path)  # exit 3 on a truncated file or a header that lies
    kind = header.get("vlkd.kind")
    if kind is not None:
        check_kind_and_version(kind, header.get("vlkd.schema_version"), "eval", path)
    for name, rank in TENSORS.items():
        info = header.tensors.get(name)
        if info is None:
            raise InputError(f"no tensor '{name}' (a scores file holds scores, image_ids, text_image_ids)", path)
        if len(info.shape) != rank:
            raise InputError(f"tensor '{name}' must have {rank} dimension(s), has shape {tuple(info.shape)}", path)


def read_score_matrix(path: Path) -> ScoreMatrix:
    """Read and validate a score matrix.

    Raises:
        InputError: Missing tensors, wrong ranks or dtypes, shapes that disagree, non-finite scores, duplicate
            image ids, or texts of images that are not rows.
    """
    from safetensors.numpy import load_file

    path = Path(path)
    _check_header(path)
    tensors = load_file(str(path))
    scores, image_ids, text_image_ids = (tensors[n] for n in TENSORS)
    if scores.dtype.kind != "f":
        raise InputError(f"'scores' must be floating point, is {scores.dtype}", path)
    if image_ids.dtype.kind not in "iu" or text_image_ids.dtype.kind not in "iu":
        raise InputError("'image_ids' and 'text_image_ids' must be integer tensors", path)
    if scores.shape != (len(image_ids), len(text_image_ids)):
        raise InputError(
            f"'scores' has shape {scores.shape}, expected (len(image_ids), len(text_image_ids)) = "
            f"({len(image_ids)}, {len(text_image_ids)})",
            path,
        )
    if not np.isfinite(scores).all():
        raise InputError(f"'scores' holds {int((~np.isfinite(scores)).sum())} non-finite values", path)
    image_ids, text_image_ids = image_ids.astype(np.int64), text_image_ids.astype(np.int64)
    unique, counts = np.unique(image_ids, return_counts=True)
    if (counts > 1).any():
        raise InputError(f"duplicate image ids in 'image_ids' (e.g. {unique[counts > 1][:5].tolist()})", path)
    unknown = np.setdiff1d(text_image_ids, image_ids)
    if unknown.size:
        raise InputError(f"{unknown.size} text_image_ids are not in image_ids (e.g. {unknown[:5].tolist()})", path)
    return ScoreMatrix(scores, image_ids, text_image_ids)
