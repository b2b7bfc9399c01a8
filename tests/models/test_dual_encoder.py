"""Dual encoder: symmetric InfoNCE against hand values, normalised embeddings, temperature, masking."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from vlkd_cli.models import DualEncoder, contrastive_loss

from . import toy


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_infonce_equals_the_hand_computed_value() -> None:
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # logits = 2 * image @ text.T = [[2, 1.2], [0, 1.6]]; -log softmax of the diagonal = softplus(other - own)
    i2t = (_softplus(1.2 - 2) + _softplus(0 - 1.6)) / 2
    t2i = (_softplus(0 - 2) + _softplus(1.2 - 1.6)) / 2
    assert contrastive_loss(image, text, 2.0).item() == pytest.approx((i2t + t2i) / 2, rel=1e-6)


def test_infonce_leaves_same_image_pairs_out_of_the_negatives() -> None:
    image = torch.eye(3)
    text = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8]])
    ids = torch.tensor([5, 5, 6])
    # logits = image @ text.T = text.T = [[1, 0, 0], [0, 1, 0.6], [0, 0, 0.8]]; pairs (0,1), (1,0) masked out
    i2t = [_softplus(0 - 1), _softplus(0.6 - 1), _softplus(math.log(math.exp(0) + math.exp(0)) - 0.8)]
    t2i = [_softplus(0 - 1), _softplus(0 - 1), math.log(math.exp(0) + math.exp(0.6) + math.exp(0.8)) - 0.8]
    expected = (sum(i2t) / 3 + sum(t2i) / 3) / 2
    assert contrastive_loss(image, text, 1.0, image_ids=ids).item() == pytest.approx(expected, rel=1e-6)


def _dual() -> DualEncoder:
    return toy.model("retrieval", arch="dual", projection_dim=16)


def test_embeddings_are_normalised_and_scores_are_cosines() -> None:
    model = _dual()
    batch = toy.batch(tags=None)
    image, text = model.encode_batch(batch)
    assert image.shape == text.shape == (3, 16)
    assert torch.allclose(image.norm(dim=-1), torch.ones(3)) and torch.allclose(text.norm(dim=-1), torch.ones(3))
    assert torch.allclose(model.similarity(image, text), image @ text.T)
    assert model.similarity(image, text).abs().max() <= 1 + 1e-6


def test_logit_scale_starts_at_clip_value_and_is_clamped() -> None:
    model = _dual()
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == 100.0


def test_forward_loss_is_infonce_of_the_embeddings() -> None:
    model = _dual()
    batch = toy.batch(tags=None)
    losses, out = model.forward_loss(batch, {}, return_outputs=True)
    image, text = model.encode_batch(batch)
    assert losses["loss"].item() == pytest.approx(contrastive_loss(image, text, model.scale()).item(), rel=1e-6)
    assert out.logits.shape == (3, 3)


def test_padding_does_not_change_embeddings() -> None:
    model = _dual()
    batch = toy.batch(tags=None)
    noisy = replace(batch, region_features=batch.region_features + 3.0 * (~batch.region_mask[..., None]),
                    input_ids=torch.where(batch.text_mask, batch.input_ids, 7))  # fmt: skip
    for a, b in zip(model.encode_batch(batch), model.encode_batch(noisy), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
