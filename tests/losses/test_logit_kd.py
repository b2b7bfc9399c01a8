"""logit_kd (softmax KL) and binary_logit_kd (sigmoid BCE) by hand; module with a row mask."""

from __future__ import annotations

import math

import pytest
import torch

from vlkd_cli.errors import InputError
from vlkd_cli.losses import logit_kd
from vlkd_cli.losses.logit_kd import LogitKDLoss, binary_logit_kd


def _softmax(xs: list[float]) -> list[float]:
    exps = [math.exp(x) for x in xs]
    return [e / sum(exps) for e in exps]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_softmax_kd_by_hand() -> None:
    student = [[1.0, 2.0], [0.0, 0.0]]
    teacher = [[2.0, 1.0], [1.0, -1.0]]
    temperature = 2.0
    kls = []
    for s_row, t_row in zip(student, teacher):
        p = _softmax([t / temperature for t in t_row])
        q = _softmax([s / temperature for s in s_row])
        kls.append(sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q)))
    expected = temperature**2 * sum(kls) / 2
    loss = logit_kd(torch.tensor(student), torch.tensor(teacher), temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert logit_kd(torch.tensor(teacher), torch.tensor(teacher), 3.0).item() == pytest.approx(0.0, abs=1e-7)


def test_binary_kd_by_hand_both_reductions() -> None:
    student = [[0.0, 1.0], [-2.0, 0.5]]
    teacher = [[1.0, -1.0], [0.0, 3.0]]
    temperature = 2.0
    terms = []
    for s_row, t_row in zip(student, teacher):
        row = []
        for s, t in zip(s_row, t_row):
            x, y = _sigmoid(s / temperature), _sigmoid(t / temperature)
            row.append(-(y * math.log(x) + (1 - y) * math.log(1 - x)))
        terms.append(row)
    mean = temperature**2 * sum(sum(r) for r in terms) / 4
    summed = temperature**2 * sum(sum(r) for r in terms) / 2
    s, t = torch.tensor(student), torch.tensor(teacher)
    assert binary_logit_kd(s, t, temperature).item() == pytest.approx(mean, rel=1e-6)
    assert binary_logit_kd(s, t, temperature, reduction="sum").item() == pytest.approx(summed, rel=1e-6)


def test_module_selects_rows_by_mask_and_kind() -> None:
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 3, 5, generator=gen), torch.randn(2, 3, 5, generator=gen)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    soft = LogitKDLoss(temperature=2.0)(student, teacher, mask)
    assert soft.item() == pytest.approx(logit_kd(student[mask], teacher[mask], 2.0).item(), rel=1e-6)
    binary = LogitKDLoss(kind="sigmoid", reduction="sum")(student, teacher, mask)
    expected = binary_logit_kd(student[mask], teacher[mask], reduction="sum")
    assert binary.item() == pytest.approx(expected.item(), rel=1e-6)
    # a masked-out row never matters
    student[0, 1] = 1e4
    assert LogitKDLoss(temperature=2.0)(student, teacher, mask).item() == soft.item()


def test_teacher_is_detached_and_extremes_are_finite() -> None:
    student = torch.tensor([[1e4, -1e4, 0.0]], requires_grad=True)
    teacher = torch.tensor([[-1e4, 1e4, 0.0]], requires_grad=True)
    for loss in (logit_kd(student, teacher, 1.0), binary_logit_kd(student, teacher, 1.0)):
        assert torch.isfinite(loss)
        loss.backward()
    assert teacher.grad is None and torch.isfinite(student.grad).all()


def test_errors() -> None:
    with pytest.raises(InputError):
        logit_kd(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        binary_logit_kd(torch.zeros(2, 3), torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError):
        LogitKDLoss(kind="softmx")
