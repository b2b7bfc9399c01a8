"""Task heads and objectives: VQA soft targets and loss, caption targets, MLM masking and learning, ITM pairs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vlkd_cli.data.vqa_targets import answer_vocabulary, soft_target
from vlkd_cli.models import (
    caption_loss,
    make_itm_pairs,
    mask_tokens,
    next_token_targets,
    soft_target_tensor,
    vqa_loss,
)

from . import toy

INDEX = {"2": 0, "3": 1, "yes": 2}


def test_soft_target_ten_identical_answers_is_one() -> None:
    assert soft_target(["2"] * 10, INDEX) == {0: 1.0}


def test_soft_target_follows_the_official_leave_one_out_rule() -> None:
    # "2" twice among 10: the 2 subsets without a "2" have 1 match (1/3), the other 8 have 2 (2/3):
    # (2 * 1/3 + 8 * 2/3) / 10 = 0.6.  "3" once: 1 subset with 0 matches, 9 with 1: (9 * 1/3) / 10 = 0.3.
    # "yes" 4 times: 4 subsets with 3 matches (1), 6 with 4 (1) -> 1.0.  "no" is out of vocabulary.
    answers = ["2", "2", "3", "yes", "yes", "yes", "yes", "no", "no", "no"]
    target = soft_target(answers, INDEX)
    assert target.keys() == {0, 1, 2}
    assert target[0] == pytest.approx(0.6) and target[1] == pytest.approx(0.3) and target[2] == 1.0
    three = soft_target(["3"] * 3 + ["no"] * 7, INDEX)  # (3 * 2/3 + 7 * 1) / 10 = 0.9
    assert three[1] == pytest.approx(0.9)


def test_soft_target_tensor_is_dense() -> None:
    dense = soft_target_tensor([{0: 1.0}, {1: 0.3, 2: 0.6}, {}], num_answers=3)
    assert torch.allclose(dense, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.3, 0.6], [0.0, 0.0, 0.0]]))


def test_answer_vocabulary_counts_questions_and_orders_deterministically() -> None:
    answers = ["yes"] * 12 + ["no"] * 9 + ["2"] * 9 + ["blue"] * 8
    assert answer_vocabulary(answers, min_count=9) == ["yes", "2", "no"]  # ties alphabetical
    assert answer_vocabulary(answers, min_count=8) == ["yes", "2", "no", "blue"]


def test_vqa_loss_sums_over_answers_and_averages_over_the_batch() -> None:
    logits = torch.tensor([[0.0, 2.0], [-1.0, 1.0]])
    targets = torch.tensor([[1.0, 0.3], [0.0, 0.0]])

    def bce(x: float, y: float) -> float:
        return -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))

    expected = (bce(0, 1) + bce(2, 0.3) + bce(-1, 0) + bce(1, 0)) / 2
    assert vqa_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_next_token_targets_shift_over_valid_caption_tokens() -> None:
    ids = torch.tensor([[2, 10, 11, 3, 0], [2, 12, 3, 0, 0]])  # [CLS] w w [SEP] pad
    mask = ids != 0
    target_mask, targets = next_token_targets(ids, mask)
    assert target_mask.tolist() == [[True, True, True, False, False], [True, True, False, False, False]]
    assert targets[target_mask].tolist() == [10, 11, 3, 12, 3]


def test_caption_loss_with_label_smoothing() -> None:
    logits, targets = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    log_p = F.log_softmax(logits, -1)[0]
    expected = -(0.9 * log_p[0] + 0.1 * log_p.mean())
    assert caption_loss(logits, targets, label_smoothing=0.1).item() == pytest.approx(expected.item(), rel=1e-6)
    assert caption_loss(torch.zeros(0, 3, requires_grad=True), torch.zeros(0, dtype=torch.long)).item() == 0.0


def test_mask_tokens_follows_15_percent_and_80_10_10() -> None:
    ids = torch.randint(10, 100, (200, 100))
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, :10] = False
    g = torch.Generator().manual_seed(0)
    corrupted, labels = mask_tokens(ids, maskable, mask_token_id=4, vocab_size=100, generator=g)
    chosen = labels != -100
    assert not chosen[:, :10].any() and torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(corrupted[~chosen], ids[~chosen])
    assert chosen.float().mean().item() == pytest.approx(0.15 * 0.9, abs=0.01)
    masked = (corrupted == 4) & chosen
    kept = (corrupted == ids) & chosen
    assert masked.sum().item() / chosen.sum().item() == pytest.approx(0.8, abs=0.03)
    assert kept.sum().item() / chosen.sum().item() == pytest.approx(0.1 + 0.1 * 0.9 / 100, abs=0.03)


def test_mlm_loss_falls_when_training_on_a_fixed_batch() -> None:
    model = toy.model("pretrain").train()
    batch = toy.batch(texts=toy.CAPTIONS[:4], tags=[["cube"], ["table"], ["sphere"], []], num_regions=[2, 3, 1, 4])
    targets = {"image_ids": torch.tensor([1, 2, 3, 4])}
    prepared, prepared_targets = model.prepare(batch, targets, generator=torch.Generator().manual_seed(0))
    assert (prepared_targets["mlm_labels"] != -100).any()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = model.forward_loss(prepared, prepared_targets)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["mlm_loss"].item())
    assert losses[-1] < 0.5 * losses[0]


def test_itm_pairs_take_regions_from_another_image() -> None:
    batch = toy.batch(texts=toy.CAPTIONS[:4], num_regions=[1, 2, 3, 4])
    image_ids = torch.tensor([7, 7, 8, 9])
    pairs, labels = make_itm_pairs(batch, image_ids, torch.Generator().manual_seed(0))
    assert labels.tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert torch.equal(pairs.input_ids[4:], batch.input_ids)  # the negatives keep each row's text
    for row in range(4):
        source = [r for r in range(4) if torch.equal(batch.region_features[r], pairs.region_features[4 + row])]
        assert len(source) == 1 and image_ids[source[0]] != image_ids[row]


def test_itm_pairs_skip_rows_without_another_image() -> None:
    batch = toy.batch(texts=toy.CAPTIONS[:2], num_regions=[1, 2])
    pairs, labels = make_itm_pairs(batch, torch.tensor([5, 5]))
    assert labels.tolist() == [1, 1] and pairs.batch_size == 2


def test_ranking_pairs_keep_each_image_and_take_captions_of_other_images() -> None:
    from vlkd_cli.models.itm_head import make_ranking_pairs

    batch = toy.batch(texts=toy.CAPTIONS[:4], num_regions=[1, 2, 3, 4])
    image_ids = torch.tensor([7, 7, 8, 9])
    pairs = make_ranking_pairs(batch, image_ids, 2, torch.Generator().manual_seed(0))
    assert pairs.batch_size == 4 * 3
    caption = batch.max_text_len
    for b in range(4):
        group = range(3 * b, 3 * b + 3)
        assert all(torch.equal(pairs.region_features[r], batch.region_features[b]) for r in group)
        assert torch.equal(pairs.input_ids[3 * b, :caption], batch.input_ids[b, :caption])  # the positive first
        for r in list(group)[1:]:
            source = [t for t in range(4) if torch.equal(batch.input_ids[t, :caption], pairs.input_ids[r, :caption])]
            assert source and all(image_ids[t] != image_ids[b] for t in source)
        assert torch.equal(pairs.input_ids[3 * b, caption:], batch.input_ids[b, caption:])  # tags stay with the image


def test_ranking_loss_is_softmax_cross_entropy_with_the_positive_first() -> None:
    from vlkd_cli.models.itm_head import ranking_loss

    logits = torch.tensor([2.0, 0.0, 1.0, -1.0, 3.0, 0.5])  # two groups of three
    expected = -(torch.log_softmax(torch.tensor([2.0, 0.0, 1.0]), 0)[0] + torch.log_softmax(torch.tensor([-1.0, 3.0, 0.5]), 0)[0]) / 2
    assert ranking_loss(logits, 3).item() == pytest.approx(expected.item(), abs=1e-6)
    with pytest.raises(ValueError, match="one image only"):
        from vlkd_cli.models.itm_head import sample_negative_texts

        sample_negative_texts(torch.tensor([5, 5]), 1)


def test_weighted_negatives_follow_the_miners_weights_and_skip_the_same_image() -> None:
    """ALBEF's hard negatives: drawn in proportion to the weights, never a caption of the same image."""
    from vlkd_cli.models.itm_head import sample_negative_texts

    image_ids = torch.tensor([1, 1, 2, 3, 4])
    weights = torch.full((5, 5), 0.01)
    weights[:, 3] = 10.0  # caption 3 (image 3) looks like every image's caption
    weights[3, 4] = 10.0  # and image 3's own hardest is caption 4
    weights[:, 0] = 50.0  # a same-image caption for rows 0 and 1: never drawn for them
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_negative_texts(image_ids, 1, g, weights) for _ in range(200)])[:, :, 0]  # (200, B)
    assert not (draws[:, :2] <= 1).any() and (draws[:, 0] == 3).float().mean() > 0.9
    assert (draws[:, 3] == 4).float().mean() > 0.1 and not (draws[:, 3] == 3).any()
    assert (draws[:, 2] == 0).float().mean() > 0.7  # image 2 may take caption 0: it is another image's
