"""Artifact kinds, their schema versions and tensor specs: validated on write and on read.

Dims are ints or symbols; a symbol binds to the same size everywhere in one file ("R" regions, "I" images),
and "I+1" means one more than "I". Kinds whose tensors are free-form (model weights) have no spec.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlkd_cli.errors import InputError

KINDS = ("regions", "detector", "model", "checkpoint", "eval", "latency")

# Bump a kind's version on any change to its keys, shapes, dtypes or meaning.
SCHEMA_VERSIONS: dict[str, int] = {kind: 1 for kind in KINDS}


@dataclass(frozen=True)
class TensorSpec:
    """The expected dtype(s) and dims of one named tensor."""

    name: str
    dtypes: tuple[str, ...]
    dims: tuple[int | str, ...]
    finite: bool = False  # floating values must all be finite


SPECS: dict[str, tuple[TensorSpec, ...]] = {
    "regions": (
        TensorSpec("boxes", ("F32",), ("R", 4), finite=True),  # xyxy, pixels of the decoded image
        TensorSpec("scores", ("F32",), ("R",), finite=True),
        TensorSpec("labels", ("I64",), ("R",)),  # COCO category ids (-1: no label)
        TensorSpec("offsets", ("I64",), ("I+1",)),  # regions of image i: offsets[i]:offsets[i+1]
        TensorSpec("image_ids", ("I64",), ("I",)),
        TensorSpec("image_sizes", ("I64",), ("I", 2)),  # (height, width)
        TensorSpec("box_digests", ("U8",), ("I", 32)),  # sha256(id, count, boxes) per image: the alignment key
        TensorSpec("student_features", ("F16", "F32"), ("R", "Ds"), finite=True),
        TensorSpec("teacher_features", ("F16", "F32"), ("R", "Dt"), finite=True),
    ),
}


def check_kind_and_version(found_kind: str | None, found_version: str | None, expected_kind: str, path) -> int:
    """Refuse a wrong kind or a newer schema with a message naming expected and found values; return the version."""
    if found_kind != expected_kind:
        found = "no vlkd kind (not a vlkd artifact)" if found_kind is None else f"kind '{found_kind}'"
        raise InputError(f"expected a vlkd '{expected_kind}' artifact, found {found}", path)
    known = SCHEMA_VERSIONS[expected_kind]
    try:
        version = int(found_version or "")
    except ValueError:
        raise InputError(f"invalid vlkd.schema_version {found_version!r} (expected an integer)", path) from None
    if version > known:
        raise InputError(
            f"schema version {version} of '{expected_kind}' is newer than this vlkd reads ({known}): upgrade vlkd", path
        )
    if version < 1:
        raise InputError(f"invalid schema version {version} of '{expected_kind}'", path)
    return version


def check_shapes(kind: str, shapes: dict[str, tuple[str, tuple[int, ...]]], path) -> dict[str, int]:
    """Check `{name: (dtype, shape)}` against the kind's spec; return the bound symbols (e.g. {"R": 812, "I": 20})."""
    specs = SPECS.get(kind)
    if specs is None:
        return {}
    missing = [s.name for s in specs if s.name not in shapes]
    if missing:
        raise InputError(f"'{kind}' artifact lacks tensors: {', '.join(missing)}", path)
    symbols: dict[str, int] = {}
    for spec in specs:
        dtype, shape = shapes[spec.name]
        if dtype not in spec.dtypes:
            raise InputError(f"tensor '{spec.name}' has dtype {dtype}, expected {'/'.join(spec.dtypes)}", path)
        if len(shape) != len(spec.dims):
            raise InputError(f"tensor '{spec.name}' has shape {list(shape)}, expected {_dims_text(spec.dims)}", path)
        for dim, size in zip(spec.dims, shape):
            _bind(dim, size, symbols, spec, shape, path)
    return symbols


def _bind(dim: int | str, size: int, symbols: dict[str, int], spec: TensorSpec, shape, path) -> None:
    name, extra = (dim[:-2], 1) if isinstance(dim, str) and dim.endswith("+1") else (dim, 0)
    if isinstance(name, int):
        expected = name
    else:
        expected = symbols.setdefault(name, size - extra) + extra
    if size != expected:
        raise InputError(
            f"tensor '{spec.name}' has shape {list(shape)}, expected {_dims_text(spec.dims)} with {symbols}", path
        )


def _dims_text(dims: tuple[int | str, ...]) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"
