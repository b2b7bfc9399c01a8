"""`vlkd env`: what a bug report needs to know about this machine — versions of Python, vlkd, torch (and its CUDA),
torchvision, timm, transformers, tokenizers, safetensors, faiss, pycocotools, numpy and Java; threads; devices."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from typing import Any

from vlkd_cli.version import __version__

PACKAGES = ("torch", "torchvision", "timm", "transformers", "tokenizers", "safetensors", "faiss-cpu", "pycocotools",
            "numpy", "Pillow", "typer", "pycocoevalcap")  # fmt: skip


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def java_version() -> str | None:
    """The first line of `java -version` (METEOR and the official PTB tokenizer need Java), or None."""
    java = shutil.which("java")
    if java is None:
        return None
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if lines else None


def devices() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    return {
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch_build": torch.__version__,
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if cuda else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "mps_available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }


def run() -> dict[str, Any]:
    """The report as a flat-ish dict (printed by the CLI, one `key: value` a line)."""
    java = java_version()
    return {
        "vlkd": __version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        **{name: package_version(name) for name in PACKAGES},
        "java": java,
        "java_ok_for_meteor": bool(java and re.search(r'version "(1\.8|\d{2,})', java)),
        **devices(),
        "env": {k: v for k, v in os.environ.items() if k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "HF_HUB_OFFLINE",
                                                              "VLKD_ONLINE", "CUDA_VISIBLE_DEVICES")},  # fmt: skip
    }
