"""The shared sequence layout, truncation, box geometry and the 2-D attention masks (cell by cell)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlkd_cli.models import box_geometry, build_attention_mask, pair_rows, seq2seq_attention_mask
from vlkd_cli.structures.vl_batch import with_caption_prefix

from . import toy


def test_layout_shapes_and_segments() -> None:
    batch = toy.batch(tags=[["cube"], ["table", "sphere"], []])
    assert batch.input_ids.shape == batch.token_type_ids.shape == batch.text_mask.shape == (3, 15)
    assert batch.region_features.shape == (3, 4, toy.FEATURE_DIM) and batch.region_boxes.shape == (3, 4, 6)
    assert batch.attention_mask.shape == (3, 19, 19) and batch.query_mask.shape == (3, 19)
    assert batch.token_type_ids[:, :10].eq(0).all() and batch.token_type_ids[:, 10:].eq(1).all()
    assert batch.input_ids.dtype == torch.long and batch.text_mask.dtype == torch.bool


def test_tags_start_at_the_same_position_whatever_the_caption_length() -> None:
    """Pitfall A1 (docs/methods.md, "Pitfalls"): the caption is padded before the tags, so tag and region positions
    never move."""
    tok = toy.tokenizer()
    batch = toy.batch(texts=["a cube", "two green cylinders on a table"], tags=[["sphere"], ["sphere"]])
    sphere = tok.convert_tokens_to_ids("sphere")
    assert batch.input_ids[0, 10].item() == batch.input_ids[1, 10].item() == sphere
    assert batch.input_ids[:, 11].tolist() == [tok.sep_token_id] * 2
    assert batch.text_mask[0].tolist()[:10] == [True] * 4 + [False] * 6  # [CLS] a cube [SEP] pad...


def test_tags_reach_the_input_when_enabled_and_not_otherwise() -> None:
    tok = toy.tokenizer()
    with_tags = toy.batch(texts=["a cube"], tags=[["traffic light", "table"]], num_regions=[1])
    expected = tok("traffic light table", add_special_tokens=False)["input_ids"] + [tok.sep_token_id]
    assert with_tags.input_ids[0, 10 : 10 + len(expected)].tolist() == expected
    assert with_tags.text_mask[0, 10:].tolist() == [True] * len(expected) + [False] * (5 - len(expected))
    without = toy.batch(texts=["a cube"], tags=None, num_regions=[1])
    assert without.input_ids[0, 10:].eq(tok.pad_token_id).all() and not without.text_mask[0, 10:].any()


def test_truncation_is_deterministic_and_keeps_the_end_tokens() -> None:
    tok = toy.tokenizer()
    long_caption = "a red cube left of a blue sphere and two green cylinders on a table"
    batch = toy.batch(texts=[long_caption], tags=[["cube", "sphere", "cylinder", "table", "cube"]], num_regions=[6])
    words = tok(long_caption, add_special_tokens=False)["input_ids"]
    assert batch.input_ids[0, :10].tolist() == [tok.cls_token_id] + words[:8] + [tok.sep_token_id]
    assert batch.text_mask[0].all()  # caption and tags both full
    assert batch.input_ids[0, 14].item() == tok.sep_token_id
    feats, _, _ = toy.regions([6])
    assert torch.equal(batch.region_features[0], torch.from_numpy(feats[0][:4]))  # the first 4 in stored order
    assert batch.region_mask[0].all()


def test_padded_regions_are_zero_and_masked() -> None:
    batch = toy.batch()
    assert batch.region_mask.tolist() == [[True] * 3 + [False], [True] * 4, [False] * 4]
    assert batch.region_features[0, 3].eq(0).all() and batch.region_features[2].eq(0).all()


def test_box_geometry_by_hand() -> None:
    geometry = box_geometry(np.array([[10.0, 20.0, 30.0, 60.0]]), height=100, width=50)
    assert torch.allclose(geometry, torch.tensor([[0.2, 0.2, 0.6, 0.6, 0.4, 0.4]]))
    assert box_geometry(np.zeros((0, 4)), 10, 10).shape == (0, 6)


def _toy_masks() -> tuple[torch.Tensor, torch.Tensor]:
    """max_text_len 4, T 6, R 2: caption [CLS] w [SEP] pad | tag [SEP] | region pad-region."""
    text_mask = torch.tensor([[True, True, True, False, True, True]])
    region_mask = torch.tensor([[True, False]])
    return text_mask, region_mask


def test_seq2seq_mask_cell_by_cell() -> None:
    text_mask, region_mask = _toy_masks()
    expected = torch.tensor([
        # keys: C0 C1 C2 Cp G4 G5 I6 Ip
        [1, 0, 0, 0, 1, 1, 1, 0],  # caption 0 sees itself (causal) + tags + regions
        [1, 1, 0, 0, 1, 1, 1, 0],
        [1, 1, 1, 0, 1, 1, 1, 0],
        [0, 0, 0, 1, 0, 0, 0, 0],  # padded caption slot: itself only
        [0, 0, 0, 0, 1, 1, 1, 0],  # tags: tags + regions, never the caption
        [0, 0, 0, 0, 1, 1, 1, 0],
        [0, 0, 0, 0, 1, 1, 1, 0],  # region: tags + regions
        [0, 0, 0, 0, 0, 0, 0, 1],  # padded region: itself only
    ], dtype=torch.bool)  # fmt: skip
    assert torch.equal(seq2seq_attention_mask(text_mask, region_mask, max_text_len=4)[0], expected)


def test_full_mask_cell_by_cell() -> None:
    text_mask, region_mask = _toy_masks()
    valid = [1, 1, 1, 0, 1, 1, 1, 0]
    expected = torch.tensor([valid if v else [int(i == j) for i in range(8)] for j, v in enumerate(valid)])
    assert torch.equal(build_attention_mask(text_mask, region_mask, 4, "full")[0], expected.bool())


def test_unknown_mask_type() -> None:
    text_mask, region_mask = _toy_masks()
    with pytest.raises(ValueError, match="unknown mask type"):
        build_attention_mask(text_mask, region_mask, 4, "causal")


def test_caption_prefix_replaces_only_the_caption_segment() -> None:
    batch = toy.batch(tags=[["cube"], ["table"], []], mask_type="seq2seq")
    prefix = torch.tensor([[2, 7, 8]] * 3)
    changed = with_caption_prefix(batch, prefix, pad_token_id=0)
    assert changed.input_ids[:, :3].tolist() == prefix.tolist() and changed.input_ids[:, 3:10].eq(0).all()
    assert changed.caption_mask[:, :3].all() and not changed.caption_mask[:, 3:].any()
    assert torch.equal(changed.input_ids[:, 10:], batch.input_ids[:, 10:])
    assert torch.equal(changed.attention_mask, seq2seq_attention_mask(changed.text_mask, changed.region_mask, 10))


def test_pair_rows_takes_text_and_regions_from_different_rows() -> None:
    batch = toy.batch(tags=[["cube"], ["table"], []])
    paired = pair_rows(batch, torch.tensor([0, 2]), torch.tensor([1, 0]))
    caption = batch.max_text_len
    assert torch.equal(paired.input_ids[:, :caption], batch.input_ids[[0, 2], :caption])  # the caption's text
    # the tags travel with the image: a negative must not be told apart by tags that disagree with its regions
    assert torch.equal(paired.input_ids[:, caption:], batch.input_ids[[1, 0], caption:])
    assert torch.equal(paired.text_mask[:, caption:], batch.text_mask[[1, 0], caption:])
    assert torch.equal(paired.region_features, batch.region_features[[1, 0]])
    assert paired.region_mask.tolist() == [[True] * 4, [True] * 3 + [False]]
