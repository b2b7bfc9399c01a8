"""The loss registry: names, helpful misses, kwargs checks, duplicates; every registered loss runs on CPU."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import vlkd_cli.losses as losses
from vlkd_cli.errors import UsageError
from vlkd_cli.losses import registry


def test_registered_names_and_public_api() -> None:
    assert losses.list_losses() == ["attention_mse", "dcd", "logit_kd", "token_nce"]
    for name in ("attention_mse", "token_nce", "dcd_loss", "logit_kd", "FeatureQueue", "create_loss", "list_losses",
                 "map_layers"):  # fmt: skip
        assert name in losses.__all__ and hasattr(losses, name)


def test_unknown_name_lists_known_names_and_suggests() -> None:
    with pytest.raises(UsageError) as err:
        losses.create_loss("tokn_nce")
    message = str(err.value)
    assert message.startswith("unknown loss 'tokn_nce'; known: attention_mse, dcd, logit_kd, token_nce")
    assert "did you mean 'token_nce'?" in message
    assert err.value.exit_code == 2
    with pytest.raises(UsageError) as err:
        losses.create_loss("zzz")
    assert "did you mean" not in str(err.value)


def test_unknown_keyword_is_a_usage_error_naming_what_is_accepted() -> None:
    with pytest.raises(UsageError, match="loss 'dcd'.*accepts: alpha, temperature, reproduce_released"):
        losses.create_loss("dcd", alpah=0.3)


def test_register_and_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_LOSSES", dict(registry._LOSSES))

    @registry.register_loss("toy_l1")
    class ToyL1(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return (a - b).abs().mean()

    assert "toy_l1" in losses.list_losses()
    assert isinstance(losses.create_loss("toy_l1"), ToyL1)
    registry.register_loss("toy_l1")(ToyL1)  # the same class again is fine (re-import)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_loss("toy_l1")(type("Other", (nn.Module,), {}))


def _attention_case() -> tuple[nn.Module, tuple, torch.Tensor]:
    student = [torch.randn(2, 2, 5, 5).softmax(-1).requires_grad_(True) for _ in range(2)]
    teacher = [torch.randn(2, 4, 5, 5).softmax(-1) for _ in range(4)]
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    return losses.create_loss("attention_mse", layers="all"), (student, teacher, mask), student[0]


def _nce_case() -> tuple[nn.Module, tuple, torch.Tensor]:
    module = losses.create_loss("token_nce", student_dim=8, teacher_dim=12, queue_size=16, max_tokens=6)
    module.update(torch.randn(10, 12))
    student = torch.randn(2, 5, 8, requires_grad=True)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    return module, (student, torch.randn(2, 5, 12), mask), student


def _logit_case() -> tuple[nn.Module, tuple, torch.Tensor]:
    student = torch.randn(2, 4, 11, requires_grad=True)
    return losses.create_loss("logit_kd", temperature=2.0), (student, torch.randn(2, 4, 11)), student


def _dcd_case() -> tuple[nn.Module, tuple, torch.Tensor]:
    student = torch.randn(4, 8, requires_grad=True)
    return losses.create_loss("dcd"), (student, torch.randn(4, 8)), student


CASES: dict[str, Callable[[], tuple[nn.Module, tuple, torch.Tensor]]] = {
    "attention_mse": _attention_case,
    "token_nce": _nce_case,
    "logit_kd": _logit_case,
    "dcd": _dcd_case,
}


@pytest.mark.parametrize("name", losses.list_losses())
def test_every_registered_loss_runs_forward_and_backward_on_cpu(name: str) -> None:
    assert name in CASES, f"add a test case for the new loss {name!r}"
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
