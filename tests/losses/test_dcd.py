"""dcd_loss by hand on B=2, K=3 (intended and released behaviour), NaN safety, parts, module."""

from __future__ import annotations

import math

import pytest
import torch

from vlkd_cli.errors import InputError
from vlkd_cli.losses import DCDLoss, dcd_loss

STUDENT = [[2.0, 0.5, -1.0], [0.0, 1.0, 0.5]]
TEACHER = [[3.0, 1.0, 0.0], [0.5, 0.5, 0.0]]


def _softmax(xs: list[float]) -> list[float]:
    top = max(xs)
    exps = [math.exp(x - top) for x in xs]
    return [e / sum(exps) for e in exps]


def _bce(x: float, y: float) -> float:
    sig = 1 / (1 + math.exp(-x))
    return -(y * math.log(sig) + (1 - y) * math.log(1 - sig))


def _by_hand(alpha: float, temperature: float, released: bool) -> tuple[float, float, float]:
    entropies = []
    for row in TEACHER:
        p = _softmax([t / (1.0 if released else temperature) for t in row])  # released: softmax(t), no T
        entropies.append(-sum(q * math.log(q) for q in p))
    shares = [h / sum(entropies) for h in entropies]
    weights = _softmax([(1 - e) ** 2 for e in shares])
    per_row = [sum(((t - s) / temperature) ** 2 for s, t in zip(s_row, t_row)) / 3
               for s_row, t_row in zip(STUDENT, TEACHER)]  # fmt: skip
    if released:
        kd = temperature**2 * sum(w * (sum(per_row) / 2) for w in weights)  # Σ_b w_b · MSE over all 6 entries
    else:
        kd = temperature**2 * sum(w * r for w, r in zip(weights, per_row))
    hard = sum(e * sum(_bce(s, y) for s, y in zip(row, [1, 0, 0])) / 3 for e, row in zip(shares, STUDENT))
    return alpha * kd + (1 - alpha) * hard, kd, hard


@pytest.mark.parametrize("released", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_b2_k3_by_hand(released: bool, temperature: float) -> None:
    loss, kd, hard = _by_hand(0.2, temperature, released)
    parts = dcd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), alpha=0.2, temperature=temperature,
                     reproduce_released=released, return_parts=True)  # fmt: skip
    assert set(parts) == {"loss", "dcd_kd_loss", "dcd_hard_loss"}
    assert parts["loss"].item() == pytest.approx(loss, rel=1e-6)
    assert parts["dcd_kd_loss"].item() == pytest.approx(kd, rel=1e-6)
    assert parts["dcd_hard_loss"].item() == pytest.approx(hard, rel=1e-6)
    scalar = dcd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), alpha=0.2, temperature=temperature,
                      reproduce_released=released)  # fmt: skip
    assert scalar.item() == parts["loss"].item()


def test_released_kd_term_is_the_plain_mse_and_differs_from_the_weighted_one() -> None:
    student, teacher = torch.tensor(STUDENT), torch.tensor(TEACHER)
    released = dcd_loss(student, teacher, reproduce_released=True, return_parts=True)
    plain = torch.nn.functional.mse_loss(teacher, student)
    assert released["dcd_kd_loss"].item() == pytest.approx(plain.item(), rel=1e-6)
    weighted = dcd_loss(student, teacher, return_parts=True)
    assert abs(weighted["dcd_kd_loss"].item() - plain.item()) > 1e-4


def test_extreme_scores_give_no_nan() -> None:
    student = torch.tensor([[1e4, -1e4, -1e4], [-1e4, 1e4, -1e4]], requires_grad=True)
    teacher = torch.tensor([[1e4, -1e4, -1e4], [-1e4, -1e4, 1e4]])
    for released in (False, True):
        loss = dcd_loss(student, teacher, reproduce_released=released)
        assert torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, student)
        assert torch.isfinite(grad).all()


def test_confident_teacher_everywhere_falls_back_to_uniform_shares() -> None:
    # every teacher row is one-hot after softmax: H = 0 for all rows, so e = 1/B (no 0/0)
    student = [[1.0, -1.0, 0.0], [0.5, 0.0, 2.0]]
    teacher = torch.tensor([[1e4, -1e4, -1e4], [-1e4, 1e4, -1e4]])
    parts = dcd_loss(torch.tensor(student), teacher, alpha=0.0, return_parts=True)
    hard = sum(0.5 * sum(_bce(s, y) for s, y in zip(row, [1, 0, 0])) / 3 for row in student)
    assert parts["loss"].item() == pytest.approx(hard, rel=1e-6)


def test_teacher_scores_get_no_gradient() -> None:
    student = torch.tensor(STUDENT, requires_grad=True)
    teacher = torch.tensor(TEACHER, requires_grad=True)
    dcd_loss(student, teacher).backward()
    assert teacher.grad is None and student.grad is not None


def test_module_and_shape_errors() -> None:
    module = DCDLoss(alpha=0.5, temperature=2.0)
    expected = dcd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), alpha=0.5, temperature=2.0)
    assert module(torch.tensor(STUDENT), torch.tensor(TEACHER)).item() == expected.item()
    with pytest.raises(InputError):
        dcd_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        DCDLoss(alpha=1.5)
