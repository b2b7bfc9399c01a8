"""Backbone weight files: read (safetensors or a `weights_only` torch file), fit onto a timm model, hash.

Fitting is tolerant where it is safe and strict where it matters:

- wrappers are removed: `{"state_dict": ...}`, `{"model": ...}`, `{"model_state_dict": ...}`, `{"module": ...}`;
- a common key prefix is removed (`module.`, `model.`, `backbone.model.` from a vlkd detector, ...): the prefix that
  makes the most keys fit is chosen;
- lukemelas-style EfficientNet keys (the `pretrained` extra's files) are renamed onto timm's, checked pairwise;
- the classifier head may be missing or have another shape (another number of classes): it is left as
  initialised, since features never pass through it;
- any other missing key or shape mismatch is an `InputError` (exit 3) naming a few of them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.vision.pretrained import convert_lukemelas_state_dict, is_lukemelas_state_dict

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module")
_MAX_LISTED = 5


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read tensors from `path`: `.safetensors` via safetensors, anything else via `torch.load(weights_only=True)`.

    Raises:
        UsageError: the file does not exist (exit 2).
        InputError: the file cannot be read or holds no state dict (exit 3).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError("weights file does not exist", path=path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure means the file is unusable
        raise InputError(f"cannot read weights ({type(err).__name__}: {err})", path=path) from err
    return unwrap_state_dict(obj, source=path)


def unwrap_state_dict(obj: object, *, source: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Remove checkpoint wrappers (`state_dict`, `model`, ...) and return the flat name -> tensor dict.

    Raises:
        InputError: what remains is not a mapping of names to tensors.
    """
    while isinstance(obj, Mapping):
        inner = next((obj[key] for key in _WRAPPER_KEYS if isinstance(obj.get(key), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise InputError("weights file holds no state dict (a mapping of names to tensors)", path=source)
    tensors = {str(key): value for key, value in obj.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise InputError("weights file holds no tensors", path=source)
    return tensors


def _best_prefix(source_keys: Iterable[str], target_keys: set[str]) -> str:
    """The key prefix whose removal makes the most source keys name a target key ("" when none helps)."""
    hits: Counter[str] = Counter()
    for key in source_keys:
        if key in target_keys:
            hits[""] += 1
        parts = key.split(".")
        for cut in range(1, len(parts)):
            if ".".join(parts[cut:]) in target_keys:
                hits[".".join(parts[:cut]) + "."] += 1
    return max(hits, key=lambda prefix: (hits[prefix], prefix == "")) if hits else ""


def _strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f" (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Key prefixes of a timm model's classifier head (from `pretrained_cfg["classifier"]`)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{name}." for name in names)


def _is_tolerated(key: str, head_prefixes: tuple[str, ...]) -> bool:
    return key.startswith(head_prefixes) or key.endswith("num_batches_tracked")


def fit_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str | Path | None = None,
) -> dict[str, torch.Tensor]:
    """Select and rename the tensors of `state_dict` that load into `model` (see the module docstring).

    Args:
        model: a timm model.
        state_dict: tensors from a file, wrappers already removed.
        source: the file, for error messages.

    Returns:
        The subset of tensors to pass to `model.load_state_dict(..., strict=False)`.

    Raises:
        InputError: a backbone key is missing or has another shape.
    """
    target = model.state_dict()
    if is_lukemelas_state_dict(state_dict):
        state_dict = convert_lukemelas_state_dict(state_dict, target, source=source)
    state_dict = _strip_prefix(state_dict, _best_prefix(state_dict, set(target)))
    head = classifier_prefixes(model)
    fitted: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    for key, expected in target.items():
        value = state_dict.get(key)
        if value is None:
            if not _is_tolerated(key, head):
                missing.append(key)
        elif tuple(value.shape) != tuple(expected.shape):
            if not _is_tolerated(key, head):
                mismatched.append(f"{key} {tuple(value.shape)} != {tuple(expected.shape)}")
        else:
            fitted[key] = value
    if missing or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} of {len(target)} backbone keys missing: {_listed(missing)}")
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatches: {_listed(mismatched)}")
        raise InputError("weights do not fit the backbone; " + "; ".join(problems), path=source)
    return fitted


def load_weights_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str | Path | None) -> None:
    """Fit `state_dict` onto `model` and copy it in (see `fit_state_dict`)."""
    fitted = fit_state_dict(model, state_dict, source=source)
    model.load_state_dict(fitted, strict=False)


def state_dict_sha256(state_dict: Mapping[str, torch.Tensor], *, exclude_prefixes: tuple[str, ...] = ()) -> str:
    """sha256 over sorted names, dtypes, shapes and raw row-major bytes (independent of file format and layout).

    `num_batches_tracked` counters and keys starting with `exclude_prefixes` are left out.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        if name.startswith(exclude_prefixes) or name.endswith("num_batches_tracked"):
            continue
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{str(tensor.dtype).removeprefix('torch.')}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
