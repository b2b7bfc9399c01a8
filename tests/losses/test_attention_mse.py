"""attention_mse: hand-computed values, padded rows ignored (no gradient, no influence), fp32, layer/head handling."""

from __future__ import annotations

import pytest
import torch

from vlkd_cli.errors import InputError
from vlkd_cli.losses import AttentionMSELoss, attention_mse


def _maps(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)[None, None]  # (1, 1, N, N)


def test_two_by_two_by_hand() -> None:
    student = _maps([[0.6, 0.4], [0.5, 0.5]])
    teacher = _maps([[1.0, 0.0], [0.2, 0.8]])
    row0 = (0.6 - 1.0) ** 2 + (0.4 - 0.0) ** 2  # 0.32: summed over keys
    row1 = (0.5 - 0.2) ** 2 + (0.5 - 0.8) ** 2  # 0.18
    both = attention_mse(student, teacher, torch.tensor([[True, True]]))
    assert both.item() == pytest.approx((row0 + row1) / 2, abs=1e-7)
    first = attention_mse(student, teacher, torch.tensor([[True, False]]))
    assert first.item() == pytest.approx(row0, abs=1e-7)


def test_mean_is_over_heads_and_all_valid_rows_of_the_batch() -> None:
    # B=2, H=2, N=2; sample 0 has 2 valid rows, sample 1 has 1: the mean runs over H·3 row terms.
    student = torch.tensor([[[[0.5, 0.5], [1.0, 0.0]], [[0.0, 1.0], [0.5, 0.5]]],
                            [[[0.9, 0.1], [0.3, 0.7]], [[0.4, 0.6], [0.0, 1.0]]]])  # fmt: skip
    teacher = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]]],
                            [[[0.5, 0.5], [0.5, 0.5]], [[0.4, 0.6], [0.0, 1.0]]]])  # fmt: skip
    mask = torch.tensor([[True, True], [True, False]])
    terms = [
        0.5**2 + 0.5**2, 0.0,  # b0 h0 rows 0, 1
        0.5**2 + 0.5**2, 0.0,  # b0 h1 rows 0, 1
        0.4**2 + 0.4**2,  # b1 h0 row 0 (row 1 padded)
        0.0,  # b1 h1 row 0
    ]  # fmt: skip
    expected = sum(terms) / (2 * 3)
    assert attention_mse(student, teacher, mask).item() == pytest.approx(expected, abs=1e-7)


def test_padded_rows_have_zero_gradient_and_no_influence() -> None:
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(2, 3, 4, 4, generator=gen).softmax(-1).requires_grad_(True)
    teacher = torch.randn(2, 3, 4, 4, generator=gen).softmax(-1)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    loss = attention_mse(student, teacher, mask)
    loss.backward()
    grad = student.grad
    assert grad is not None
    padded = ~mask[:, None, :, None].expand_as(grad)
    assert torch.all(grad[padded] == 0)
    assert grad[~padded].abs().sum() > 0
    # Garbage (even inf/NaN) in padded rows, of either model, changes nothing.
    student2 = student.detach().clone()
    teacher2 = teacher.clone()
    student2[0, :, 3] = float("nan")
    teacher2[1, :, 1:] = float("inf")
    student2.requires_grad_(True)
    loss2 = attention_mse(student2, teacher2, mask)
    assert loss2.item() == loss.item()
    loss2.backward()
    assert torch.isfinite(student2.grad).all()
    assert torch.equal(student2.grad, grad)


def test_no_valid_rows_gives_zero_attached_to_the_graph() -> None:
    student = torch.full((1, 1, 2, 2), 0.5, requires_grad=True)
    loss = attention_mse(student, torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(student.grad, torch.zeros_like(student))


def test_bf16_inputs_are_computed_in_fp32() -> None:
    gen = torch.Generator().manual_seed(1)
    student = torch.randn(1, 2, 5, 5, generator=gen).softmax(-1).bfloat16()
    teacher = torch.randn(1, 2, 5, 5, generator=gen).softmax(-1).bfloat16()
    mask = torch.ones(1, 5, dtype=torch.bool)
    loss = attention_mse(student, teacher, mask)
    assert loss.dtype == torch.float32
    reference = (student.float() - teacher.float()).pow(2).sum(-1).mean()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)


def test_shape_mismatch_is_an_input_error() -> None:
    with pytest.raises(InputError):
        attention_mse(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 4, 4), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(InputError):
        attention_mse(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), torch.ones(1, 4, dtype=torch.bool))


def test_module_uses_the_uniform_layer_map() -> None:
    gen = torch.Generator().manual_seed(2)
    student = [torch.randn(1, 2, 3, 3, generator=gen).softmax(-1) for _ in range(2)]
    garbage = [torch.randn(1, 2, 3, 3, generator=gen).softmax(-1) for _ in range(2)]
    teacher = [garbage[0], student[0].clone(), garbage[1], student[1].clone()]  # 2 layers vs 4: l -> 2l + 1
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert AttentionMSELoss(layers="all")(student, teacher, mask).item() == 0.0
    # teacher layer 0 is not in the map; shifting the map by one (the hidden-state off-by-one) would be non-zero
    assert AttentionMSELoss(layers="all")(student, [student[0], garbage[0], student[1], garbage[1]], mask).item() > 0
    last = AttentionMSELoss(layers="last")(student, [garbage[0]] * 3 + [student[1]], mask)
    assert last.item() == 0.0
    # the mean over mapped layers
    two = AttentionMSELoss(layers="all")(student, [garbage[0], garbage[0], garbage[1], garbage[1]], mask)
    expected = (attention_mse(student[0], garbage[0], mask) + attention_mse(student[1], garbage[1], mask)) / 2
    assert two.item() == pytest.approx(expected.item(), rel=1e-6)


def test_module_averages_heads_when_counts_differ() -> None:
    student = _maps([[0.6, 0.4], [0.5, 0.5]])  # (1, 1, 2, 2): one head
    teacher = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.4], [0.4, 0.6]]]])  # (1, 2, 2, 2)
    # head mean of the teacher: [[0.8, 0.2], [0.2, 0.8]]
    row0 = (0.6 - 0.8) ** 2 + (0.4 - 0.2) ** 2
    row1 = (0.5 - 0.2) ** 2 + (0.5 - 0.8) ** 2
    loss = AttentionMSELoss(layers="all")([student], [teacher], torch.ones(1, 2, dtype=torch.bool))
    assert loss.item() == pytest.approx((row0 + row1) / 2, abs=1e-7)


def test_module_rejects_bad_layer_specs_early() -> None:
    from vlkd_cli.errors import UsageError

    with pytest.raises(UsageError):
        AttentionMSELoss(layers="every")
