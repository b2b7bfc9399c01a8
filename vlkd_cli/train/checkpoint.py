"""Training checkpoints without pickle: `DIR/checkpoints/step-NNNNNNNN/` holding

- `checkpoint.safetensors` (kind `checkpoint`): `model.*` the trainable module's state dict (buffers such as the
  NCE queue included), `optim.<param>.<name>` the optimizer's tensors, `rng.*` the generator states;
- `state.json`: step, epoch, position in the epoch, the optimizer's param groups and scalars, RNG scalars, the
  best validation metric so far.

A checkpoint directory appears atomically; the newest complete one is what `--resume` continues from.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vlkd_cli.artifacts.atomic import atomic_dir
from vlkd_cli.artifacts.io import build_metadata, load_tensors, save_artifact
from vlkd_cli.errors import InputError
from vlkd_cli.train.rng import capture_rng, restore_rng

CHECKPOINTS = "checkpoints"
STEP_DIR = re.compile(r"^step-(\d{8})$")


@dataclass
class LoopState:
    """Where the loop is: resuming from it continues exactly."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batches_into_epoch: int = 0  # micro-batches of `epoch` already consumed
    best_metric: float | None = None
    best_step: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def checkpoint_dirs(out: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(out) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name))


def save_checkpoint(out: Path, module: nn.Module, optimizer: torch.optim.Optimizer, state: LoopState,
                    *, config: dict[str, Any], keep: int) -> Path:  # fmt: skip
    """Write step-NNNNNNNN atomically and prune to the `keep` newest."""
    path = Path(out) / CHECKPOINTS / f"step-{state.step:08d}"
    tensors = {f"model.{k}": v.detach().clone() for k, v in module.state_dict().items()}
    optim_tensors, optim_meta = _optimizer_state(optimizer)
    rng_tensors, rng_meta = capture_rng()
    tensors.update(optim_tensors)
    tensors.update(rng_tensors)
    metadata = build_metadata("checkpoint", command=config.get("command", "train"), config=config)
    with atomic_dir(path) as tmp:
        save_artifact(tmp / "checkpoint.safetensors", tensors, metadata)
        payload = {"loop": asdict(state), "optimizer": optim_meta, "rng": rng_meta}
        (tmp / "state.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    for old in checkpoint_dirs(out)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return path


def load_checkpoint(path: Path, module: nn.Module, optimizer: torch.optim.Optimizer) -> LoopState:
    """Restore module, optimizer and RNG from a checkpoint directory; return the loop state."""
    tensors, _ = load_tensors(path / "checkpoint.safetensors", "checkpoint", check_finite=False)
    try:
        payload = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"unreadable checkpoint state ({err})", path / "state.json") from err
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        module.load_state_dict(model_state, strict=True)
        optimizer.load_state_dict(_optimizer_state_dict(tensors, payload["optimizer"]))
        _restore_scalar_shapes(optimizer)
    except (RuntimeError, KeyError, ValueError) as err:
        raise InputError(f"checkpoint does not fit this model/run: {str(err).splitlines()[0]}", path) from err
    restore_rng({k: v for k, v in tensors.items() if k.startswith("rng.")}, payload["rng"])
    return LoopState(**payload["loop"])


def _optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{name}"] = value.detach().clone()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_scalar_shapes(optimizer: torch.optim.Optimizer) -> None:
    """safetensors stores a 0-d tensor as shape (1,): give the state of a 0-d parameter (a dual encoder's
    `logit_scale`) its parameter's shape again, and every `step` its 0-d shape (AdamW's own)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for name, value in state.items():
                target = () if name == "step" else param.shape
                if torch.is_tensor(value) and value.shape != target and value.numel() == math.prod(target):
                    state[name] = value.reshape(target)


def _optimizer_state_dict(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}
