"""The one training loop: every training command (finetune, adapt-teacher, distill) runs through `train`.

A task supplies an `nn.Module` whose `forward(batch)` returns `{"loss": total, "<name>_loss": part, ...}`; the
loop knows no loss by name. Per optimizer step: micro-batches (gradient accumulation, DDP `no_sync` on all
but the last) → clip → AdamW → lr from the stateless schedule → `task.after_step()` (queue pushes) → log →
checkpoint / evaluate. Resume restores module (buffers included), optimizer, RNG and the sampler position,
so an interrupted-then-resumed run ends bit-identical to an uninterrupted one on CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vlkd_cli.artifacts.atomic import write_text_atomic
from vlkd_cli.artifacts.io import build_metadata, load_tensors, save_artifact
from vlkd_cli.distributed import all_reduce_mean, barrier, get_rank, get_world_size, init_distributed, is_main
from vlkd_cli.errors import InputError, RunError, UsageError
from vlkd_cli.progress import progress_bar
from vlkd_cli.train.checkpoint import CHECKPOINTS, LoopState, checkpoint_dirs, load_checkpoint, save_checkpoint
from vlkd_cli.train.config import TrainConfig
from vlkd_cli.train.optim import create_optimizer, lr_factor, set_lr
from vlkd_cli.train.sampler import ResumableSampler

LOG_NAME = "log.jsonl"


class TrainTask(Protocol):
    """What a training command hands the loop."""

    module: nn.Module  # forward(batch) -> {"loss", "<name>_loss"...}; everything trainable + stateful buffers
    metric_name: str  # validation metric to maximise (e.g. "CIDEr")

    def train_dataset(self) -> Dataset: ...
    def collate(self, items: list[Any]) -> Any: ...
    def after_step(self) -> None: ...
    def evaluate(self, module: nn.Module) -> dict[str, float]: ...
    def save_model(self, out: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str],
                   summary: dict[str, Any]) -> None: ...  # fmt: skip


@dataclass
class TrainResult:
    steps: int
    best_metric: float | None
    best_step: int | None
    history: list[dict[str, float]] = field(default_factory=list)


def prepare_out_dir(out: Path, cfg: TrainConfig) -> None:
    """Refuse to mix runs: checkpoints without --resume are exit 2 unless --overwrite; --resume needs one (3).

    It creates nothing: stages call it before loading their models, and a model refused then (e.g. a newer schema)
    must leave no run directory behind. `train` creates the directory.
    """
    existing = checkpoint_dirs(out)
    if cfg.resume and not existing:
        raise InputError("--resume: no checkpoint to resume from", Path(out) / CHECKPOINTS)
    if existing and not cfg.resume:
        if not cfg.overwrite:
            raise UsageError("holds checkpoints of another run: pass --resume to continue it or --overwrite", out)
        if is_main():
            for stale in existing:
                shutil.rmtree(stale, ignore_errors=True)
            shutil.rmtree(Path(out) / CHECKPOINTS / "best", ignore_errors=True)
            (Path(out) / LOG_NAME).unlink(missing_ok=True)


def train(task: TrainTask, cfg: TrainConfig, *, out: Path, device: torch.device, command: str,
          run_config: dict[str, Any]) -> TrainResult:  # fmt: skip
    """Train `task.module` per `cfg`, writing checkpoints, `log.jsonl` and finally the model into `out`."""
    distributed = init_distributed(device)
    world = get_world_size()
    if cfg.batch_size % world:
        raise UsageError(f"--batch-size {cfg.batch_size} is not divisible by the {world} processes")
    prepare_out_dir(out, cfg)
    if is_main():
        Path(out).mkdir(parents=True, exist_ok=True)
    barrier()
    module = task.module.to(device)
    model = nn.parallel.DistributedDataParallel(module, forward_sync_buffers=False) if distributed else module
    optimizer = create_optimizer([module], lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = load_checkpoint(checkpoint_dirs(out)[-1], module, optimizer) if cfg.resume else LoopState()
    dataset = task.train_dataset()
    sampler = ResumableSampler(dataset, num_replicas=world, rank=get_rank(), seed=cfg.seed)
    per_rank = cfg.batch_size // world
    batches_per_epoch = math.ceil(sampler.num_samples / per_rank)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup * total)
    config = {**run_config, "command": command, "train": asdict(cfg), "world_size": world}
    log = _Log(Path(out) / LOG_NAME, keep_until=state.step if cfg.resume else 0)
    module.train()
    with progress_bar(command, total) as advance:
        advance(state.step)
        while state.step < total:
            sampler.set_epoch(state.epoch)
            sampler.set_start(state.batches_into_epoch * per_rank)
            loader = DataLoader(dataset, batch_size=per_rank, sampler=sampler, collate_fn=task.collate,
                                generator=torch.Generator().manual_seed(cfg.seed))  # keeps the global RNG untouched
            for micro_batches in _steps(iter(loader), cfg.grad_accum):
                start = time.perf_counter()
                set_lr(optimizer, cfg.lr * lr_factor(state.step, total_steps=total, warmup_steps=warmup,
                                                     schedule=cfg.schedule))  # fmt: skip
                parts, data_time = _optimizer_step(model, optimizer, micro_batches, cfg, device, state.step)
                task.after_step()
                state.step += 1
                state.batches_into_epoch += len(micro_batches)
                advance(1)
                elapsed = time.perf_counter() - start + data_time
                samples = sum(_batch_len(b) for _, b in micro_batches) * world
                log.write({"step": state.step, "epoch": state.epoch, "lr": optimizer.param_groups[0]["lr"], **parts,
                           "samples_per_s": samples / max(elapsed, 1e-9), "data_share": data_time / max(elapsed, 1e-9)},
                          force=state.step % max(cfg.log_every, 1) == 0 or state.step == total)  # fmt: skip
                _evaluate_and_save(task, module, optimizer, state, cfg, out, config, log, total)
                if state.step >= total:
                    break
            else:
                state.epoch += 1
                state.batches_into_epoch = 0
    _save_final(task, module, state, out, command, config)
    return TrainResult(state.step, state.best_metric, state.best_step, log.entries)


def _steps(batches: Iterator[Any], grad_accum: int) -> Iterator[list[tuple[float, Any]]]:
    """Group micro-batches per optimizer step, with the time spent waiting for each (data loading)."""
    while True:
        group = []
        for _ in range(grad_accum):
            start = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            group.append((time.perf_counter() - start, batch))
        if not group:
            return
        yield group


def _optimizer_step(model: nn.Module, optimizer, micro_batches, cfg: TrainConfig, device, step: int):
    """Forward/backward every micro-batch, clip, step; return mean loss parts (floats) and data time."""
    totals: dict[str, float] = {}
    data_time = sum(t for t, _ in micro_batches)
    optimizer.zero_grad(set_to_none=True)
    for n, (_, batch) in enumerate(micro_batches):
        sync = n == len(micro_batches) - 1 or not hasattr(model, "no_sync")
        with (contextlib.nullcontext() if sync else model.no_sync()):
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                parts = model(_to_device(batch, device))
            _check_finite(parts, step)
            (parts["loss"] / len(micro_batches)).backward()
        for name, value in parts.items():
            totals[name] = totals.get(name, 0.0) + float(value.detach()) / len(micro_batches)
    if cfg.clip_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        totals["grad_norm"] = float(norm)
    optimizer.step()
    reduced = all_reduce_mean(torch.tensor([totals[k] for k in sorted(totals)], dtype=torch.float64))
    return dict(zip(sorted(totals), reduced.tolist())), data_time


def _check_finite(parts: dict[str, torch.Tensor], step: int) -> None:
    """Exit 1 on a non-finite loss, on every rank at once (a lone rank raising would hang the others)."""
    bad = torch.tensor([0.0 if torch.isfinite(parts["loss"].detach()).all() else 1.0])
    if float(all_reduce_mean(bad)) > 0:
        values = {k: round(float(v.detach()), 6) for k, v in parts.items()}
        raise RunError(f"non-finite loss at step {step + 1}: {values} (lower --lr, or check the inputs)")


def _evaluate_and_save(task, module, optimizer, state: LoopState, cfg: TrainConfig, out: Path, config, log, total):
    final = state.step >= total
    if cfg.eval_every and (state.step % cfg.eval_every == 0 or final):
        module.eval()
        with torch.inference_mode():
            metrics = task.evaluate(module)
        module.train()
        log.write({"step": state.step, **{f"val/{k}": v for k, v in metrics.items()}}, force=True)
        value = metrics.get(task.metric_name)
        if value is not None and (state.best_metric is None or value > state.best_metric):
            state.best_metric, state.best_step = value, state.step
            if is_main():
                _save_best(module, out, config, state)
    if cfg.save_every and (state.step % cfg.save_every == 0 or final) and is_main():
        save_checkpoint(out, module, optimizer, state, config=config, keep=cfg.keep_checkpoints)
    barrier()


def _save_best(module: nn.Module, out: Path, config: dict, state: LoopState) -> None:
    best = Path(out) / CHECKPOINTS / "best"
    best.mkdir(parents=True, exist_ok=True)
    metadata = build_metadata("checkpoint", command=config["command"], config=config)
    save_artifact(best / "model.safetensors", module.state_dict(), metadata)
    write_text_atomic(best / "state.json", json.dumps({"step": state.best_step, "metric": state.best_metric}))


def _save_final(task, module: nn.Module, state: LoopState, out: Path, command: str, config: dict) -> None:
    """The final model: the best validated weights when validation ran, else the last."""
    if not is_main():
        barrier()
        return
    state_dict = module.state_dict()
    best = Path(out) / CHECKPOINTS / "best" / "model.safetensors"
    if state.best_step is not None and best.is_file():
        state_dict, _ = load_tensors(best, "checkpoint")
    summary = {"final_step": state.step, "best_step": state.best_step, "best_metric": state.best_metric,
               "metric": task.metric_name if state.best_step is not None else None}  # fmt: skip
    metadata = build_metadata("model", command=command, config={**config, **summary})
    task.save_model(Path(out), state_dict, metadata, summary)
    barrier()


def _to_device(batch: Any, device: torch.device) -> Any:
    if hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _batch_len(batch: Any) -> int:
    if hasattr(batch, "__len__"):
        return len(batch)
    return 1


class _Log:
    """`log.jsonl` (rank 0 only). On resume, lines after the checkpoint's step are dropped, so the log of a
    resumed run equals the log of an uninterrupted one."""

    def __init__(self, path: Path, *, keep_until: int) -> None:
        self.path, self.entries = path, []
        if not is_main():
            return
        kept = []
        if keep_until and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    entry = json.loads(line)
                    if entry.get("step", 0) <= keep_until:
                        kept.append(line + "\n")
        write_text_atomic(path, "".join(kept))

    def write(self, entry: dict[str, Any], *, force: bool = True) -> None:
        self.entries.append(entry)
        if force and is_main():
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

