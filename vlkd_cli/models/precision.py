"""Inference precision of a model: `--precision fp32|bf16|int8` on the eval commands and `benchmark-latency`.

- `fp32`: the model as trained (float32 weights and activations).
- `bf16`: float32 weights, matmuls in bfloat16 under `torch.autocast` (CPU and CUDA). Autocast keeps the ops that
  need range or accuracy (softmax, layer norm, reductions) in float32, which casting the whole model to bfloat16
  would not; the callers cast what leaves the model (scores, embeddings) back to float32.
- `int8`: dynamic quantisation of every `nn.Linear` (`torch.ao.quantization.quantize_dynamic`: int8 weights,
  activations quantised per batch at run time) and of the caption models' tied LM decoder (an int8 copy of the word
  embedding matrix: `TiedLMHead.quantize_decoder`). Embeddings and layer norms stay float32. CPU only: PyTorch's
  dynamically quantised kernels do not run on CUDA.

Use `to_precision(model, precision, device)` once after loading (eval mode) and run inference inside
`precision_context(precision, device)`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from vlkd_cli.errors import UsageError
from vlkd_cli.models.lm_head import TiedLMHead

PRECISIONS = ("fp32", "bf16", "int8")


def check_precision(precision: str, device: torch.device | None = None) -> None:
    """UsageError (exit 2) for an unknown precision, or for int8 on a device other than the CPU."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and device is not None and device.type != "cpu":
        raise UsageError(f"--precision int8 (dynamic quantisation) runs on the CPU only; the device is {device}")


def to_precision(model: nn.Module, precision: str, device: torch.device) -> nn.Module:
    """The model to run at `precision`: the model itself (fp32, bf16), or a dynamically quantised copy (int8).

    Args:
        model: A float32 model in eval mode, on `device`.
        precision: fp32, bf16 or int8.
        device: Where it runs (int8: the CPU only).
    """
    check_precision(precision, device)
    if precision != "int8":
        return model
    with warnings.catch_warnings():  # torch.ao.quantization and quantized tensors announce their move to torchao
        for category in (DeprecationWarning, FutureWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        for module in quantized.modules():  # the tied decoders, each with the table of its own encoder
            head = getattr(module, "lm_head", None)
            if isinstance(head, TiedLMHead) and hasattr(module, "vl"):
                head.quantize_decoder(module.vl.word_embeddings.weight)
    return quantized.eval()


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """Inference at `precision`: bf16 = `torch.autocast(device.type, dtype=torch.bfloat16)`; fp32, int8: as is."""
    check_precision(precision)
    if precision != "bf16":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield
