"""The loss modules the task modules build their terms from: each runs forward and backward on CPU."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import vlkd_cli.losses as losses


def test_public_api() -> None:
    for name in ("attention_mse", "token_nce", "dcd_loss", "logit_kd", "binary_logit_kd", "AttentionMSELoss",
                 "TokenNCELoss", "LogitKDLoss", "DCDLoss", "FeatureQueue", "map_layers"):  # fmt: skip
        assert name in losses.__all__ and hasattr(losses, name)
    assert not hasattr(losses, "create_loss")  # one source of truth: the task modules' terms (tasks/terms.py)


def _attention_case() -> tuple[nn.Module, tuple, torch.Tensor]:
    student = [torch.randn(2, 2, 5, 5).softmax(-1).requires_grad_(True) for _ in range(2)]
    teacher = [torch.randn(2, 4, 5, 5).softmax(-1) for _ in range(4)]
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    return losses.AttentionMSELoss(layers="all"), (student, teacher, mask), student[0]


def _nce_case() -> tuple[nn.Module, tuple, torch.Tensor]:
    module = losses.TokenNCELoss(8, 12, queue_size=16, max_tokens=6)
    module.update(torch.randn(10, 12))
    student = torch.randn(2, 5, 8, requires_grad=True)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    return module, (student, torch.randn(2, 5, 12), mask), student


def _logit_case() -> tuple[nn.Module, tuple, torch.Tensor]:
    student = torch.randn(2, 4, 11, requires_grad=True)
    return losses.LogitKDLoss(temperature=2.0), (student, torch.randn(2, 4, 11)), student


def _dcd_case() -> tuple[nn.Module, tuple, torch.Tensor]:
    student = torch.randn(4, 8, requires_grad=True)
    return losses.DCDLoss(), (student, torch.randn(4, 8)), student


CASES: dict[str, Callable[[], tuple[nn.Module, tuple, torch.Tensor]]] = {
    "attention_mse": _attention_case,
    "token_nce": _nce_case,
    "logit_kd": _logit_case,
    "dcd": _dcd_case,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_loss_module_runs_forward_and_backward_on_cpu(name: str) -> None:
    torch.manual_seed(0)
    module, inputs, student = CASES[name]()
    loss = module(*inputs)
    assert loss.shape == () and loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    params = [p for p in module.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in params)


FUNCTIONAL: dict[str, Callable[[], torch.Tensor]] = {
    "attention_mse": lambda: losses.attention_mse(torch.randn(2, 2, 6, 6).softmax(-1),
                                                  torch.randn(2, 2, 6, 6).softmax(-1), torch.ones(2, 6, dtype=torch.bool)),
    "token_nce": lambda: losses.token_nce(torch.randn(16, 8), torch.randn(16, 8), torch.randn(32, 8), 0.07),
    "logit_kd": lambda: losses.logit_kd(torch.randn(8, 30), torch.randn(8, 30), 2.0),
    "binary_logit_kd": lambda: losses.binary_logit_kd(torch.randn(8, 30), torch.randn(8, 30), 2.0),
    "dcd_loss": lambda: losses.dcd_loss(torch.randn(4, 8), torch.randn(4, 8)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_functional_losses_stay_fp32_under_bf16_autocast(name: str) -> None:
    torch.manual_seed(1)
    reference = FUNCTIONAL[name]()
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = FUNCTIONAL[name]()
    assert mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(reference.item(), rel=1e-6)
