"""Timing primitives of `vlkd benchmark-latency`: per-stage wall clocks, summary statistics, memory and environment.

What is timed and how (the conventions of MLPerf Inference's single-stream scenario and of PyTorch's
`torch.utils.benchmark`, written here as our own code): `time.perf_counter` around each stage, preceded and followed by
`torch.cuda.synchronize()` on CUDA so that queued kernels are charged to the stage that launched them; warm-up
iterations are run and discarded; the median, the 90th percentile (`numpy.percentile`, linear interpolation) and the
mean are reported over the kept iterations, in milliseconds.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA only; CPU work is synchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class StageClock:
    """Per-stage elapsed seconds of one iteration.

    >>> clock = StageClock(torch.device("cpu"))
    >>> with clock("decode"):
    ...     pass
    >>> list(clock.seconds)
    ['decode']
    """

    device: torch.device
    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.add(stage, time.perf_counter() - start)

    def add(self, stage: str, seconds: float) -> None:
        """Charge `seconds` to `stage` (stages timed in several pieces add up)."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


class ModuleTimer:
    """Total time spent inside a module's forward calls, via forward pre/post hooks (synchronised on CUDA).

    Used to split a task model's work into the transformer and everything around it (head, decoding loop) without
    changing the model's code: caption decoding calls the transformer once for the tags and regions, then once per step.
    """

    def __init__(self, module: nn.Module, device: torch.device) -> None:
        self.device, self.seconds, self._start = device, 0.0, 0.0
        self._handles = [module.register_forward_pre_hook(self._enter), module.register_forward_hook(self._leave)]

    def _enter(self, *_args) -> None:
        synchronize(self.device)
        self._start = time.perf_counter()

    def _leave(self, *_args) -> None:
        synchronize(self.device)
        self.seconds += time.perf_counter() - self._start

    def take(self) -> float:
        """The seconds accumulated since the last call, and reset."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def summarize(milliseconds: np.ndarray) -> dict[str, float | int]:
    """{"median_ms", "p90_ms", "mean_ms", "iters"} of (N,) per-iteration times in milliseconds."""
    values = np.asarray(milliseconds, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty 1-D array of timings, got shape {values.shape}")
    return {
        "median_ms": float(np.median(values)),
        "p90_ms": float(np.percentile(values, 90)),
        "mean_ms": float(values.mean()),
        "iters": int(values.size),
    }


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """No progress bars inside timed code (they cost time and would print once per iteration)."""
    previous = os.environ.get("VLKD_PROGRESS")
    os.environ["VLKD_PROGRESS"] = "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("VLKD_PROGRESS", None)
        else:
            os.environ["VLKD_PROGRESS"] = previous


def reset_peak_rss() -> str:
    """Reset the process's resident-memory high-water mark where the OS allows it.

    Returns:
        "model" when the mark was reset (Linux: writing 5 to /proc/self/clear_refs resets VmHWM), so the next
        `peak_rss_mib` covers only what ran since; "process" when it could not be (then the peak is the process's).
    """
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return "model"
    except OSError:
        return "process"


def _proc_status_mib(key: str) -> float | None:
    """A memory line of /proc/self/status (Linux) in MiB, or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def rss_mib() -> float | None:
    """The current resident memory in MiB (Linux; None elsewhere)."""
    return _proc_status_mib("VmRSS")


def peak_rss_mib() -> float:
    """The resident-memory high-water mark in MiB (VmHWM on Linux, else `ru_maxrss`)."""
    peak = _proc_status_mib("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024.0  # bytes on macOS, kB elsewhere


def cpu_name() -> str:
    """The CPU model name (/proc/cpuinfo on Linux, else `platform.processor()`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict[str, object]:
    """What the numbers depend on: device, threads, library versions, CPU."""
    from vlkd_cli.version import __version__

    info: dict[str, object] = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "vlkd": __version__,
    }
    if device.type == "cuda":
        info["cuda_device"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def measure(iteration, warmup: int, iters: int) -> dict[str, np.ndarray]:
    """Run `iteration() -> {stage: seconds}` `warmup` times (discarded), then `iters` times.

    Returns:
        Per stage, the (iters,) float64 milliseconds of the kept iterations, in run order.
    """
    for _ in range(warmup):
        iteration()
    kept: dict[str, list[float]] = {}
    for _ in range(iters):
        for stage, seconds in iteration().items():
            kept.setdefault(stage, []).append(seconds * 1000.0)
    return {stage: np.asarray(values, dtype=np.float64) for stage, values in kept.items()}
