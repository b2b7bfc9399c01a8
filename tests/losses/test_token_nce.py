"""token_nce by hand; TokenNCELoss: masks, sub-sampling, raw teacher keys enqueued after backward, eval mode."""

from __future__ import annotations

import math

import pytest
import torch

from vlkd_cli.errors import InputError
from vlkd_cli.losses import TokenNCELoss, token_nce


def test_without_negatives_the_loss_is_zero() -> None:
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    loss = token_nce(student, teacher, torch.zeros(0, 4), temperature=0.07)
    assert loss.item() == 0.0  # −log(e^x / e^x)


def test_two_tokens_two_negatives_by_hand() -> None:
    tau = 0.5
    student = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised: [1, 0], [0, 1]
    teacher = torch.tensor([[3.0, 4.0], [0.0, 0.5]])  # normalised: [0.6, 0.8], [0, 1]
    negatives = torch.tensor([[0.0, 5.0], [-0.5, 0.0]])  # normalised: [0, 1], [−1, 0]
    # row 0: s·t = 0.6, s·q = 0, −1;   row 1: s·t = 1, s·q = 1, 0
    row0 = -math.log(math.exp(0.6 / tau) / (math.exp(0.6 / tau) + math.exp(0.0 / tau) + math.exp(-1.0 / tau)))
    row1 = -math.log(math.exp(1.0 / tau) / (math.exp(1.0 / tau) + math.exp(1.0 / tau) + math.exp(0.0 / tau)))
    loss = token_nce(student, teacher, negatives, temperature=tau)
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_small_temperature_and_huge_values_stay_finite() -> None:
    student = torch.tensor([[1e4, -1e4]], requires_grad=True)
    teacher = torch.tensor([[-1.0, 1.0]])
    negatives = torch.tensor([[1.0, -1.0]] * 3)
    loss = token_nce(student, teacher, negatives, temperature=1e-3)
    # cos(s, t) = −1, cos(s, q) = 1: loss = −log(e^{−1000} / (e^{−1000} + 3 e^{1000})) = 2000 + log 3
    assert loss.item() == pytest.approx(2000 + math.log(3), rel=1e-6)
    loss.backward()
    assert torch.isfinite(student.grad).all()


def test_no_tokens_gives_zero_attached_to_the_graph() -> None:
    student = torch.zeros(0, 3, requires_grad=True)
    loss = token_nce(student, torch.zeros(0, 3), torch.ones(4, 3), 0.1)
    assert loss.item() == 0.0
    loss.backward()


def test_bad_shapes() -> None:
    with pytest.raises(InputError):
        token_nce(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(0, 3), 0.1)
    with pytest.raises(InputError):
        token_nce(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(1, 4), 0.1)
    with pytest.raises(ValueError):
        token_nce(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(1, 3), 0.0)


def _identity_nce(dim: int, **kwargs) -> TokenNCELoss:
    nce = TokenNCELoss(dim, dim, **kwargs)
    with torch.no_grad():
        nce.projection.weight.copy_(torch.eye(dim))
        nce.projection.bias.zero_()
    return nce


def test_module_masks_tokens_and_uses_the_current_queue() -> None:
    gen = torch.Generator().manual_seed(3)
    nce = _identity_nce(3, queue_size=4, temperature=0.2)
    student, teacher = torch.randn(2, 3, 3, generator=gen), torch.randn(2, 3, 3, generator=gen)
    mask = torch.tensor([[True, True, False], [False, True, False]])
    first = nce(student, teacher, mask)
    assert first.item() == 0.0  # empty queue: no negatives yet
    nce.update()
    # the queue now holds the RAW teacher states of the three valid tokens, in order (never student vectors)
    assert torch.equal(nce.queue.negatives(), teacher[mask])
    second = nce(student, teacher, mask)
    expected = token_nce(student[mask], teacher[mask], teacher[mask], 0.2)
    assert second.item() == pytest.approx(expected.item(), rel=1e-6)
    # padded tokens (of either model) never matter
    student2, teacher2 = student.clone(), teacher.clone()
    student2[~mask] = 1e6
    teacher2[~mask] = float("nan")
    assert nce(student2, teacher2, mask).item() == second.item()


def test_update_after_backward_and_before_backward_give_the_same_gradients() -> None:
    gen = torch.Generator().manual_seed(4)
    student, teacher = torch.randn(2, 4, 3, generator=gen), torch.randn(2, 4, 3, generator=gen)
    mask = torch.ones(2, 4, dtype=torch.bool)
    grads = []
    for update_first in (False, True):
        torch.manual_seed(0)
        nce = TokenNCELoss(3, 3, queue_size=5)
        nce.update(torch.randn(5, 3))  # a full queue
        loss = nce(student, teacher, mask)
        if update_first:
            nce.update()  # an early push must neither raise nor change this step's gradients
        loss.backward()
        grads.append(nce.projection.weight.grad.clone())
    assert torch.equal(grads[0], grads[1])


def test_sub_sampling_caps_tokens_and_follows_the_generator() -> None:
    student, teacher = torch.randn(2, 10, 3), torch.randn(2, 10, 3)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False  # 17 valid tokens
    chosen = []
    for _ in range(2):
        nce = TokenNCELoss(3, 3, queue_size=64, max_tokens=5, generator=torch.Generator().manual_seed(7))
        nce(student, teacher, mask)
        nce.update()
        assert int(nce.queue.filled) == 5
        keys = nce.queue.negatives()
        valid = teacher[mask]
        assert all(any(torch.equal(k, v) for v in valid) for k in keys)  # only valid teacher tokens
        chosen.append(keys)
    assert torch.equal(chosen[0], chosen[1])  # same generator seed, same tokens
    # without a generator the global RNG decides (restored by checkpoints)
    nce = TokenNCELoss(3, 3, queue_size=64, max_tokens=5)
    torch.manual_seed(11)
    a = nce.select(mask)
    torch.manual_seed(11)
    assert torch.equal(a, nce.select(mask)) and a.numel() == 5 and bool(mask.reshape(-1)[a].all())


def test_pending_keys_accumulate_over_micro_batches_and_eval_mode_stores_nothing() -> None:
    nce = _identity_nce(2, queue_size=8)
    teacher_a = torch.arange(4.0).reshape(1, 2, 2)
    teacher_b = torch.arange(10.0, 14.0).reshape(1, 2, 2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    nce(torch.randn(1, 2, 2), teacher_a, mask)
    nce(torch.randn(1, 2, 2), teacher_b, mask)  # gradient accumulation: same queue for both micro-batches
    nce.eval()
    nce(torch.randn(1, 2, 2), torch.full((1, 2, 2), -1.0), mask)  # validation: not enqueued
    nce.train()
    nce.update()
    assert nce.queue.negatives().tolist() == [[0, 1], [2, 3], [10, 11], [12, 13]]
    nce.update()  # nothing pending: no change
    assert int(nce.queue.filled) == 4


def test_state_dict_holds_projection_and_queue() -> None:
    nce = TokenNCELoss(4, 6, queue_size=16)
    assert set(nce.state_dict()) == {"projection.weight", "projection.bias", "queue.queue", "queue.ptr", "queue.filled"}
    assert nce.queue.queue.shape == (16, 6)
    assert TokenNCELoss(4, 6).queue.size == 4096 and TokenNCELoss(4, 6).temperature == 0.07


def test_fp32_even_under_bf16_autocast() -> None:
    gen = torch.Generator().manual_seed(5)
    student, teacher, negatives = (torch.randn(64, 32, generator=gen) for _ in range(3))
    reference = token_nce(student, teacher, negatives, 0.07)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = token_nce(student, teacher, negatives, 0.07)
    assert mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(reference.item(), rel=1e-6)
