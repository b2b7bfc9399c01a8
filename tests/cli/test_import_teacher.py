"""`import-teacher --format oscar`: tiny Oscar / VinVL checkpoints with the public key names and shapes are imported,
compute what Oscar computes, and run finetune / adapt-teacher + distill / eval as teachers.

The checkpoints are built here as microsoft/Oscar's `save_pretrained` writes them (`oscar/modeling/modeling_bert.py`:
`BertImgModel` under `bert.`, `cls.predictions.*` for captioning, `classifier*` for VQA / retrieval) at a small size:
hidden 32, 2 layers, 2 heads, and img_feature_dim 70 = a 64-d stand-in for VinVL's 2048-d features + the 6 box
values. The reference forward below re-implements Oscar's computation from the raw checkpoint tensors with plain
torch (no vlkd module), so an import that puts a tensor in the wrong place cannot pass.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from tests.conftest import invoke
from vlkd_cli.artifacts.io import build_metadata
from vlkd_cli.artifacts.regions import RegionsWriter

HIDDEN, LAYERS, HEADS, INTERMEDIATE, POSITIONS = 32, 2, 2, 64, 64
FEATURE_DIM = 64  # VinVL: 2048
IMG_DIM = FEATURE_DIM + 6  # VinVL: 2054
STUDENT_DIM = 16
LAYOUT = ["--max-text-len", 16, "--max-tag-len", 8, "--max-regions", 10]
WORDS = ["the", "of", "on", "in", "and", "is", "what", "color", "how", "many", "red", "blue", "green", "cube",
         "sphere", "cylinder", "yes", "no", "left", "right", "two", "three"]  # fmt: skip


def _vocab() -> list[str]:
    """A BERT-uncased-like vocabulary: [PAD] 0, [unused*], [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103, pieces."""
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,?!'-")
    return (["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            + chars + [f"##{c}" for c in chars] + WORDS)  # fmt: skip


VOCAB = _vocab()


# ------------------------------------------------------------------------------------------ checkpoint builders


def oscar_state_dict(task: str, *, img_layernorm: bool, classifier: str = "linear", num_labels: int = 2,
                     seed: int = 0) -> dict[str, torch.Tensor]:  # fmt: skip
    """Random tensors under Oscar's exact key names and shapes (LayerNorms not 1/0, so a misplaced one shows)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.3

    def norm(prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": 1 + rand(HIDDEN) * 0.3, f"{prefix}.bias": rand(HIDDEN) * 0.3}

    def linear(prefix: str, rows: int, cols: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": rand(rows, cols), f"{prefix}.bias": rand(rows)}

    sd = {"bert.embeddings.word_embeddings.weight": rand(len(VOCAB), HIDDEN),
          "bert.embeddings.position_embeddings.weight": rand(POSITIONS, HIDDEN),
          "bert.embeddings.token_type_embeddings.weight": rand(2, HIDDEN),
          "bert.embeddings.position_ids": torch.arange(POSITIONS)[None],
          **norm("bert.embeddings.LayerNorm")}  # fmt: skip
    for i in range(LAYERS):
        p = f"bert.encoder.layer.{i}"
        for name in ("query", "key", "value"):
            sd.update(linear(f"{p}.attention.self.{name}", HIDDEN, HIDDEN))
        sd.update(linear(f"{p}.attention.output.dense", HIDDEN, HIDDEN) | norm(f"{p}.attention.output.LayerNorm"))
        sd.update(linear(f"{p}.intermediate.dense", INTERMEDIATE, HIDDEN))
        sd.update(linear(f"{p}.output.dense", HIDDEN, INTERMEDIATE) | norm(f"{p}.output.LayerNorm"))
    sd.update(linear("bert.pooler.dense", HIDDEN, HIDDEN) | linear("bert.img_embedding", HIDDEN, IMG_DIM))
    if img_layernorm:
        sd.update(norm("bert.LayerNorm"))
    if task == "caption":
        sd.update(
            linear("cls.predictions.transform.dense", HIDDEN, HIDDEN) | norm("cls.predictions.transform.LayerNorm")
        )
        sd["cls.predictions.bias"] = rand(len(VOCAB))
        sd["cls.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"].clone()  # --tie_weights
    elif classifier == "mlp":
        sd.update(linear("classifier.0", 2 * HIDDEN, HIDDEN) | linear("classifier.2", num_labels, 2 * HIDDEN))
    else:
        sd.update(linear("classifier", num_labels, HIDDEN))
    return sd


def oscar_config(task: str, *, img_layernorm: bool, classifier: str = "linear", num_labels: int = 2) -> dict:
    """config.json as Oscar's run_*.py leave it (pytorch_transformers BertConfig + the fields they set)."""
    config = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "hidden_size": HIDDEN, "initializer_range": 0.02, "intermediate_size": INTERMEDIATE,
              "layer_norm_eps": 1e-12, "max_position_embeddings": POSITIONS, "num_attention_heads": HEADS,
              "num_hidden_layers": LAYERS, "num_labels": num_labels, "output_attentions": False,
              "output_hidden_states": False, "pruned_heads": {}, "torchscript": False, "type_vocab_size": 2,
              "vocab_size": len(VOCAB), "img_feature_dim": IMG_DIM, "img_feature_type": "frcnn"}  # fmt: skip
    if task == "caption":
        config.update(finetuning_task="image_captioning", loss_type="sfmx", tie_weights=True, freeze_embedding=True,
                      label_smoothing=0.1, drop_worst_ratio=0.2, drop_worst_after=20000)  # fmt: skip
    elif task == "vqa":
        config.update(finetuning_task="vqa_text", loss_type="bce", classifier=classifier, cls_hidden_scale=2,
                      code_voc=512)  # fmt: skip
    else:
        config.update(finetuning_task="ir", loss_type="sfmx")
    if img_layernorm:
        config.update(use_img_layernorm=1, img_layer_norm_eps=1e-12)
    return config


def write_checkpoint(directory: Path, state: dict, config: dict, *, fmt: str = "bin") -> Path:
    """An Oscar checkpoint directory: config.json, weights, vocab.txt and the tokenizer side files."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    if fmt == "bin":
        torch.save(state, directory / "pytorch_model.bin")  # a plain state dict, as save_pretrained
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(directory / "model.safetensors"))
    (directory / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "max_len": 512}))
    (directory / "special_tokens_map.json").write_text(json.dumps(
        {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}))  # fmt: skip
    (directory / "added_tokens.json").write_text("{}")
    return directory


def _import(src: Path, out: Path, *extra) -> object:
    return invoke_import(["import-teacher", "--format", "oscar", src, "--out", out, *LAYOUT, *extra])


def invoke_import(args: list):
    """The registered `vlkd import-teacher`, or (until it is registered) the command in an app of its own."""
    from vlkd_cli.cli import app

    if any(getattr(c, "name", None) == "import-teacher" for c in app.registered_commands):
        return invoke(args)
    import typer
    from typer.testing import CliRunner

    from vlkd_cli.cli.import_teacher import EPILOG, import_teacher_cmd

    local = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    local.command("import-teacher", epilog=EPILOG)(import_teacher_cmd)
    local.command("noop")(lambda: None)  # two commands: the sub-command name is required, as in the real app
    return CliRunner().invoke(local, [str(a) for a in args])


# --------------------------------------------------------------------------------- Oscar's forward, re-implemented


def _layer_norm(x: torch.Tensor, sd: dict, prefix: str, eps: float = 1e-12) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], eps)


def _linear(x: torch.Tensor, sd: dict, prefix: str) -> torch.Tensor:
    return x @ sd[f"{prefix}.weight"].T + sd[f"{prefix}.bias"]


def oscar_sequence_output(sd: dict, input_ids, token_type_ids, img_feats, attention_mask, *, img_layernorm: bool):
    """BertImgModel.forward from the raw tensors: (B, T) ids, (B, R, 70) features ⊕ boxes, (B, N, N) 0/1 mask."""
    t = input_ids.shape[1]
    text = (sd["bert.embeddings.word_embeddings.weight"][input_ids]
            + sd["bert.embeddings.position_embeddings.weight"][torch.arange(t)][None]
            + sd["bert.embeddings.token_type_embeddings.weight"][token_type_ids])  # fmt: skip
    text = _layer_norm(text, sd, "bert.embeddings.LayerNorm")
    image = _linear(img_feats, sd, "bert.img_embedding")
    if img_layernorm:
        image = _layer_norm(image, sd, "bert.LayerNorm")
    hidden = torch.cat([text, image], dim=1)  # (B, N, D)
    additive = (1.0 - attention_mask.float())[:, None] * -10000.0  # (B, 1, N, N), Oscar's extended mask
    b, n, _ = hidden.shape
    dh = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"bert.encoder.layer.{i}"

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, n, HEADS, dh).transpose(1, 2)  # (B, H, N, dh)

        q, k, v = (heads(_linear(hidden, sd, f"{p}.attention.self.{m}")) for m in ("query", "key", "value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + additive, dim=-1)
        context = (probs @ v).transpose(1, 2).reshape(b, n, HIDDEN)
        attended = _layer_norm(_linear(context, sd, f"{p}.attention.output.dense") + hidden, sd,
                               f"{p}.attention.output.LayerNorm")  # fmt: skip
        inner = F.gelu(_linear(attended, sd, f"{p}.intermediate.dense"))
        hidden = _layer_norm(_linear(inner, sd, f"{p}.output.dense") + attended, sd, f"{p}.output.LayerNorm")
    return hidden


def oscar_classifier_logits(sd: dict, sequence: torch.Tensor, classifier: str) -> torch.Tensor:
    """ImageBertForSequenceClassification: pooler (dense + tanh on [CLS]) -> classifier."""
    pooled = torch.tanh(_linear(sequence[:, 0], sd, "bert.pooler.dense"))
    if classifier == "mlp":
        return _linear(F.relu(_linear(pooled, sd, "classifier.0")), sd, "classifier.2")
    return _linear(pooled, sd, "classifier")


def oscar_caption_logits(sd: dict, sequence: torch.Tensor) -> torch.Tensor:
    """BertOnlyMLMHead with the decoder tied to the word embeddings."""
    transformed = _layer_norm(F.gelu(_linear(sequence, sd, "cls.predictions.transform.dense")), sd,
                              "cls.predictions.transform.LayerNorm")  # fmt: skip
    return transformed @ sd["cls.predictions.decoder.weight"].T + sd["cls.predictions.bias"]


def _load_imported(out: Path):
    from vlkd_cli.models.factory import model_from_config
    from vlkd_cli.models.tokenizer import load_tokenizer

    config = json.loads((out / "config.json").read_text())
    model = model_from_config(config)
    model.load_state_dict(load_file(out / "model.safetensors"))
    return model.eval(), load_tokenizer(out), config


def _batch(model, tokenizer, seed: int = 0):
    """Three rows: texts with tags, 5 / 10 / 2 regions (padding everywhere the layout has some)."""
    from vlkd_cli.structures.vl_batch import build_batch

    rng = np.random.default_rng(seed)
    counts = [5, 10, 2]
    feats = [rng.normal(size=(n, FEATURE_DIM)).astype(np.float32) for n in counts]
    boxes = []
    for n in counts:
        x1, y1 = rng.uniform(0, 40, size=(2, n))
        boxes.append(np.stack([x1, y1, x1 + rng.uniform(1, 20, n), y1 + rng.uniform(1, 20, n)], axis=1))
    texts = ["what color is the cube?", "A red sphere left of two cylinders", "how many"]
    tags = [["cube", "sphere"], ["cylinder"], []]
    return build_batch(tokenizer, texts, tags, feats, boxes, [(64, 64)] * 3, **model.batch_kwargs())


def _reference_sequence(sd, batch, img_layernorm):
    img_feats = torch.cat([batch.region_features, batch.region_boxes], dim=-1)  # Oscar's 2054 = 2048 ⊕ 6 layout
    return oscar_sequence_output(sd, batch.input_ids, batch.token_type_ids, img_feats, batch.attention_mask,
                                 img_layernorm=img_layernorm)  # fmt: skip


# ------------------------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_caption_checkpoint_lands_tensor_by_tensor_and_computes_oscars_outputs(tmp_path, fmt):
    sd = oscar_state_dict("caption", img_layernorm=True)
    sd["bert.some_future_module.weight"] = torch.ones(3)  # a key no rule knows
    src = write_checkpoint(tmp_path / "oscar", sd, oscar_config("caption", img_layernorm=True), fmt=fmt)
    out = tmp_path / "teacher"
    result = _import(src, out)
    assert result.exit_code == 0, result.output
    assert "unknown (not loaded): 1" in result.stdout and "bert.some_future_module.weight" in result.stdout
    assert "[MASK] appended" in result.stderr  # the caption-objective note

    model, tokenizer, config = _load_imported(out)
    weights = load_file(out / "model.safetensors")
    rename = {"bert.embeddings.": "vl.encoder.embeddings.", "bert.encoder.": "vl.encoder.encoder.",
              "bert.img_embedding.": "vl.region_embedding.projection.", "bert.LayerNorm.": "vl.region_embedding.layer_norm.",
              "cls.predictions.transform.dense.": "lm_head.dense.", "cls.predictions.transform.LayerNorm.": "lm_head.layer_norm.",
              "cls.predictions.bias": "lm_head.bias"}  # fmt: skip
    placed = 0
    for key, tensor in sd.items():
        for old, new in rename.items():
            if key.startswith(old) and not key.endswith("position_ids"):
                assert torch.equal(weights[new + key[len(old) :]], tensor), key
                placed += 1
    assert placed == len(weights) == 5 + 16 * LAYERS + 4 + 5  # every tensor of our model came from the checkpoint

    report = json.loads((out / "import_report.json").read_text())
    assert report["unknown"] == ["bert.some_future_module.weight"] and report["missing"] == []
    assert set(report["ignored"]) == {"bert.embeddings.position_ids", "bert.pooler.dense.weight",
                                      "bert.pooler.dense.bias", "cls.predictions.decoder.weight"}  # fmt: skip
    assert report["task"] == "caption" and report["weights_file"] == (
        "pytorch_model.bin" if fmt == "bin" else "model.safetensors"
    )
    assert config["region_feature_dim"] == FEATURE_DIM and config["features"] == "teacher"
    assert config["feature_backbone"] == "vinvl" and config["region_layer_norm"] is True
    assert config["special_token_ids"] == {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
    assert config["initialized_from"].startswith("oscar:") and config["layout"]["max_text_len"] == 16

    batch = _batch(model, tokenizer)
    with torch.no_grad():
        ours = model.vl(batch).last_hidden_state
        logits = model.lm_head(ours, model.vl.word_embeddings.weight)
    reference = _reference_sequence(sd, batch, img_layernorm=True)
    valid = batch.query_mask
    assert torch.allclose(ours[valid], reference[valid], atol=1e-4), (ours[valid] - reference[valid]).abs().max()
    ref_logits = oscar_caption_logits(sd, reference)
    assert torch.allclose(logits[valid[:, : logits.shape[1]]], ref_logits[valid[:, : logits.shape[1]]], atol=1e-4)


def test_tokenizer_is_the_vocab_txt_one_and_its_fingerprint_is_stable(tmp_path):
    from transformers import BertTokenizer

    from vlkd_cli.models.tokenizer import tokenizer_fingerprint

    src = write_checkpoint(tmp_path / "oscar", oscar_state_dict("caption", img_layernorm=True),
                           oscar_config("caption", img_layernorm=True))  # fmt: skip
    assert _import(src, tmp_path / "a").exit_code == 0
    assert _import(src, tmp_path / "b").exit_code == 0
    _, tokenizer, config = _load_imported(tmp_path / "a")
    assert config["tokenizer_fingerprint"] == tokenizer_fingerprint(tokenizer)
    assert (
        json.loads((tmp_path / "b" / "config.json").read_text())["tokenizer_fingerprint"]
        == config["tokenizer_fingerprint"]
    )
    slow = BertTokenizer(str(src / "vocab.txt"), do_lower_case=True)  # HF's reading of the same vocab.txt
    for text in ["A RED cube, left of 2 spheres?", "what colour is the xylophone", "naïve café"]:
        assert tokenizer(text)["input_ids"] == slow(text)["input_ids"], text
    assert config["imported"]["tokenizer"]["lowercase_from"] == "tokenizer_config.json do_lower_case"


def test_a_table_padded_beyond_the_vocabulary_is_cut_and_duplicate_tokens_are_refused(tmp_path):
    sd = oscar_state_dict("caption", img_layernorm=True)
    padded = {k: torch.cat([v, torch.randn(3, *v.shape[1:])]) if k in (
        "bert.embeddings.word_embeddings.weight", "cls.predictions.bias") else v for k, v in sd.items()}  # fmt: skip
    padded["cls.predictions.decoder.weight"] = padded["bert.embeddings.word_embeddings.weight"].clone()
    src = write_checkpoint(tmp_path / "oscar", padded,
                           {**oscar_config("caption", img_layernorm=True), "vocab_size": len(VOCAB) + 3})  # fmt: skip
    result = _import(src, tmp_path / "t")
    assert result.exit_code == 0, result.output
    weights = load_file(tmp_path / "t" / "model.safetensors")
    assert torch.equal(
        weights["vl.encoder.embeddings.word_embeddings.weight"], sd["bert.embeddings.word_embeddings.weight"]
    )
    assert torch.equal(weights["lm_head.bias"], sd["cls.predictions.bias"])
    report = json.loads((tmp_path / "t" / "import_report.json").read_text())
    assert report["vocabulary_trimmed"]["from_rows"] == len(VOCAB) + 3 and "rows" in result.stderr
    assert json.loads((tmp_path / "t" / "config.json").read_text())["encoder"]["vocab_size"] == len(VOCAB)

    (src / "vocab.txt").write_text("\n".join([*VOCAB, "cube"]) + "\n")
    result = _import(src, tmp_path / "t2")
    assert result.exit_code == 3 and "'cube'" in result.stderr and "vocab.txt" in result.stderr


def test_vqa_mlp_head_without_image_layernorm_matches_oscar(tmp_path):
    answers = ["yes", "no", "2", "red", "blue"]
    sd = oscar_state_dict("vqa", img_layernorm=False, classifier="mlp", num_labels=len(answers))
    stray = {"bert.LayerNorm.weight": torch.full((HIDDEN,), 2.0), "bert.LayerNorm.bias": torch.ones(HIDDEN)}
    src = write_checkpoint(tmp_path / "oscar", sd, oscar_config("vqa", img_layernorm=False, classifier="mlp",
                                                                num_labels=len(answers)), fmt="safetensors")  # fmt: skip
    save_file({**sd, **stray}, str(src / "model.safetensors"))  # present, but the config does not switch it on
    ans2label = tmp_path / "ans2label.json"  # Oscar's trainval_ans2label.pkl, as JSON
    ans2label.write_text(json.dumps({a: i for i, a in reversed(list(enumerate(answers)))}))
    out = tmp_path / "teacher"
    result = _import(src, out, "--answers", ans2label)
    assert result.exit_code == 0, result.output
    model, tokenizer, config = _load_imported(out)
    assert config["answers"] == answers and config["region_layer_norm"] is False
    assert config["vqa_head"] == {"style": "pooled", "classifier": "mlp", "hidden_scale": 2}
    assert isinstance(model.vl.region_embedding.layer_norm, torch.nn.Identity)
    ignored = json.loads((out / "import_report.json").read_text())["ignored"]
    assert "use_img_layernorm is off" in ignored["bert.LayerNorm.weight"] and "bert.LayerNorm.bias" in ignored
    weights = load_file(out / "model.safetensors")
    assert torch.equal(weights["vqa_head.hidden.weight"], sd["classifier.0.weight"])
    assert torch.equal(weights["vqa_head.output.bias"], sd["classifier.2.bias"])
    assert torch.equal(weights["vqa_head.pooler.weight"], sd["bert.pooler.dense.weight"])
    batch = _batch(model, tokenizer)
    with torch.no_grad():
        logits = model.vqa_logits(batch)
    reference = oscar_classifier_logits(sd, _reference_sequence(sd, batch, img_layernorm=False), "mlp")
    assert torch.allclose(logits, reference, atol=1e-4), (logits - reference).abs().max()


def test_retrieval_two_way_classifier_becomes_one_match_logit(tmp_path):
    sd = oscar_state_dict("retrieval", img_layernorm=True, num_labels=2)
    src = write_checkpoint(tmp_path / "oscar", sd, oscar_config("retrieval", img_layernorm=True))
    out = tmp_path / "teacher"
    result = _import(src, out)
    assert result.exit_code == 0, result.output
    model, tokenizer, config = _load_imported(out)
    assert config["task"] == "retrieval" and "ir" in json.loads((out / "import_report.json").read_text())["task_from"]
    batch = _batch(model, tokenizer)
    with torch.no_grad():
        ours = torch.sigmoid(model.itm_scores(batch))
    reference = torch.softmax(oscar_classifier_logits(sd, _reference_sequence(sd, batch, True), "linear"), dim=-1)
    assert torch.allclose(ours, reference[:, 1], atol=1e-5)  # run_retrieval.py's score: softmax(logits)[:, 1]


def test_missing_and_unknown_keys_are_listed_and_a_missing_body_is_refused(tmp_path):
    sd = oscar_state_dict("caption", img_layernorm=True)
    del sd["cls.predictions.transform.dense.weight"]
    src = write_checkpoint(tmp_path / "oscar", sd, oscar_config("caption", img_layernorm=True))
    result = _import(src, tmp_path / "t")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "t" / "import_report.json").read_text())
    assert report["missing"] == ["lm_head.dense.weight"] and "lm_head.dense.weight" in result.stdout
    assert any("random initialisation" in note for note in report["notes"])
    assert _import(src, tmp_path / "again").exit_code == 0  # the missing weights' initialisation is seeded
    first, again = load_file(tmp_path / "t" / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert torch.equal(first["lm_head.dense.weight"], again["lm_head.dense.weight"])

    del sd["bert.encoder.layer.1.output.dense.weight"]
    src2 = write_checkpoint(tmp_path / "oscar2", sd, oscar_config("caption", img_layernorm=True))
    result = _import(src2, tmp_path / "t2")
    assert result.exit_code == 3 and "vl.encoder.encoder.layer.1.output.dense.weight" in result.stderr
    assert not (tmp_path / "t2").exists()


def test_untied_decoder_and_mlp_retrieval_head_are_refused(tmp_path):
    sd = oscar_state_dict("caption", img_layernorm=True)
    sd["cls.predictions.decoder.weight"] = sd["cls.predictions.decoder.weight"] + 0.5
    src = write_checkpoint(tmp_path / "a", sd, oscar_config("caption", img_layernorm=True))
    result = _import(src, tmp_path / "ta")
    assert (
        result.exit_code == 3 and "cls.predictions.decoder.weight" in result.stderr and "tie_weights" in result.stderr
    )
    sd = oscar_state_dict("retrieval", img_layernorm=True, classifier="mlp")
    src = write_checkpoint(tmp_path / "b", sd, oscar_config("retrieval", img_layernorm=True))
    result = _import(src, tmp_path / "tb")
    assert result.exit_code == 3 and "classifier.0.weight" in result.stderr


def _write_marker(path: str) -> int:
    Path(path).write_text("code ran")
    return 0


class CodeCarrier:
    """A pickled instance whose unpickling would run `_write_marker` (a stand-in for `os.system`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_write_marker, (self.marker,))


class ShellCall:
    def __init__(self, marker: Path) -> None:
        self.command = f"touch {marker}"

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


@pytest.mark.parametrize("carrier", [CodeCarrier, ShellCall])
def test_a_bin_holding_code_is_refused_and_never_run(tmp_path, carrier):
    marker = tmp_path / "marker"
    sd = oscar_state_dict("caption", img_layernorm=True)
    src = write_checkpoint(tmp_path / "oscar", sd, oscar_config("caption", img_layernorm=True))
    torch.save({**sd, "extra": carrier(marker)}, src / "pytorch_model.bin")
    result = _import(src, tmp_path / "t")
    assert result.exit_code == 3, result.output
    assert "pytorch_model.bin" in result.stderr and "weights_only=True" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "t").exists()


def test_pickled_training_args_are_never_read_and_pickled_answers_are_refused(tmp_path):
    marker = tmp_path / "marker"
    sd = oscar_state_dict("vqa", img_layernorm=True, num_labels=3)
    src = write_checkpoint(tmp_path / "oscar", sd, oscar_config("vqa", img_layernorm=True, num_labels=3))
    torch.save(CodeCarrier(marker), src / "training_args.bin")  # Oscar saves its argparse namespace like this
    pkl = tmp_path / "trainval_ans2label.pkl"
    torch.save({"yes": 0, "no": 1, "2": 2}, pkl)  # any pickle
    result = _import(src, tmp_path / "t", "--answers", pkl)
    assert result.exit_code == 3 and "does not load pickles" in result.stderr
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(["yes", "no"]))
    result = _import(src, tmp_path / "t", "--answers", answers)
    assert result.exit_code == 3 and "2 answers for a classifier with 3 outputs" in result.stderr
    result = _import(src, tmp_path / "t")
    assert result.exit_code == 2 and "--answers" in result.stderr
    answers.write_text(json.dumps(["yes", "no", "2"]))
    result = _import(src, tmp_path / "t", "--answers", answers)
    assert result.exit_code == 0, result.output
    assert "training_args.bin" in json.loads((tmp_path / "t" / "import_report.json").read_text())["files_not_read"]
    assert not marker.exists()


def test_usage_errors(tmp_path):
    src = write_checkpoint(tmp_path / "oscar", oscar_state_dict("caption", img_layernorm=True),
                           oscar_config("caption", img_layernorm=True))  # fmt: skip
    assert _import(src, tmp_path / "t", "--task", "nlvr").exit_code == 2
    result = invoke_import(["import-teacher", "--format", "uniter", src, "--out", tmp_path / "t"])
    assert result.exit_code == 2 and "--format" in result.stderr
    result = invoke_import(["import-teacher", "--out", tmp_path / "t"])
    assert result.exit_code == 2 and "SRC argument or as --src" in result.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = _import(src, tmp_path / "busy")
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    result = invoke_import(["import-teacher", "--src", src, "--out", tmp_path / "busy", "--overwrite", *LAYOUT])
    assert result.exit_code == 0 and not (tmp_path / "busy" / "notes.txt").exists()


# ----------------------------------------------------------------------------- the imported teacher in the pipeline


@pytest.fixture(scope="module")
def vinvl_regions(demo_data, tmp_path_factory) -> Path:
    """Regions of the demo images with 64-d 'VinVL' teacher features and 16-d student features."""
    instances = json.loads((demo_data / "instances.json").read_text())
    path = tmp_path_factory.mktemp("vinvl") / "regions.safetensors"
    rng = np.random.default_rng(0)
    writer = RegionsWriter(path, student_dim=STUDENT_DIM, teacher_dim=FEATURE_DIM, feature_dtype="float32")
    for image in sorted(instances["images"], key=lambda im: im["id"]):
        anns = [a for a in instances["annotations"] if a["image_id"] == image["id"]][:10]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], np.float32).reshape(-1, 4)
        n = len(anns)
        writer.add(image["id"], (image["height"], image["width"]), boxes, np.linspace(1, 0.5, n),
                   np.array([a["category_id"] for a in anns], np.int64),
                   rng.normal(size=(n, STUDENT_DIM)), rng.normal(size=(n, FEATURE_DIM)))  # fmt: skip
    extra = {"vlkd.student_backbone": "tiny-student", "vlkd.student_backbone_sha256": "",
             "vlkd.teacher_backbone": "vinvl-tsv", "vlkd.teacher_backbone_sha256": "",
             "vlkd.categories": json.dumps(instances["categories"]), "vlkd.proposals": "test"}  # fmt: skip
    writer.finish(build_metadata("regions", command="test", config={}, extra=extra))
    return path


def _run(args: list) -> None:
    result = invoke(args)
    assert result.exit_code == 0, result.output


def test_imported_caption_teacher_finetunes_adapts_distills_and_evaluates(demo_data, vinvl_regions, tmp_path):
    src = write_checkpoint(tmp_path / "oscar", oscar_state_dict("caption", img_layernorm=False),
                           oscar_config("caption", img_layernorm=False))  # fmt: skip
    teacher = tmp_path / "teacher"
    assert _import(src, teacher).exit_code == 0
    common = ["--regions", vinvl_regions, "--annotations", demo_data / "karpathy.json", "--split", "train",
              "--batch-size", 4, "--max-steps", 1, "--device", "cpu"]  # fmt: skip
    _run(["finetune", "--task", "caption", "--model", teacher, "--features", "teacher", *common,
          "--out", tmp_path / "continued"])  # fmt: skip
    continued = json.loads((tmp_path / "continued" / "config.json").read_text())
    assert continued["initialized_from"].startswith("model:") and continued["region_layer_norm"] is False
    # DistillVLM: adapt the imported teacher to the student's boxes, then distil a tiny student from it.
    _run(["adapt-teacher", "--teacher", teacher, "--task", "caption", *common, "--out", tmp_path / "adapted"])
    _run(["distill", "--teacher", tmp_path / "adapted", "--student", "tiny", "--task", "caption", *common,
          "--queue-size", 16, "--out", tmp_path / "student"])  # fmt: skip
    student = json.loads((tmp_path / "student" / "config.json").read_text())
    assert (
        student["tokenizer_fingerprint"] == json.loads((teacher / "config.json").read_text())["tokenizer_fingerprint"]
    )
    _run(["eval-caption", "--model", teacher, "--regions", vinvl_regions, "--annotations", demo_data / "karpathy.json",
          "--split", "test", "--max-length", 4, "--no-meteor", "--device", "cpu", "--out", tmp_path / "eval"])  # fmt: skip
    assert "CIDEr" in json.loads((tmp_path / "eval" / "metrics.json").read_text())


def test_imported_vqa_and_retrieval_teachers_evaluate_finetune_and_teach_dcd(demo_data, vinvl_regions, tmp_path):
    annotations = json.loads((demo_data / "annotations.json").read_text())["annotations"]
    answers = sorted({a["multiple_choice_answer"] for a in annotations})
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    src = write_checkpoint(tmp_path / "vqa-ckpt", oscar_state_dict("vqa", img_layernorm=True, num_labels=len(answers)),
                           oscar_config("vqa", img_layernorm=True, num_labels=len(answers)))  # fmt: skip
    assert _import(src, tmp_path / "vqa", "--answers", tmp_path / "answers.json").exit_code == 0
    _run(["eval-vqa", "--model", tmp_path / "vqa", "--regions", vinvl_regions, "--questions",
          demo_data / "questions.json", "--annotations", demo_data / "annotations.json", "--device", "cpu",
          "--out", tmp_path / "eval-vqa"])  # fmt: skip
    assert "overall" in json.loads((tmp_path / "eval-vqa" / "metrics.json").read_text())
    _run(["finetune", "--task", "vqa", "--model", tmp_path / "vqa", "--features", "teacher", "--regions", vinvl_regions,
          "--annotations", demo_data / "annotations.json", "--questions", demo_data / "questions.json",
          "--answer-vocab", tmp_path / "answers.json", "--batch-size", 4, "--max-steps", 1, "--device", "cpu",
          "--out", tmp_path / "vqa-continued"])  # fmt: skip
    continued = json.loads((tmp_path / "vqa-continued" / "config.json").read_text())
    assert continued["vqa_head"]["style"] == "pooled" and continued["initialized_from"].startswith("model:")

    src = write_checkpoint(tmp_path / "ir-ckpt", oscar_state_dict("retrieval", img_layernorm=True),
                           oscar_config("retrieval", img_layernorm=True))  # fmt: skip
    assert _import(src, tmp_path / "ir").exit_code == 0
    _run(["eval-retrieval", "--model", tmp_path / "ir", "--regions", vinvl_regions, "--annotations",
          demo_data / "karpathy.json", "--split", "test", "--device", "cpu", "--out", tmp_path / "eval-ir"])  # fmt: skip
    assert "rsum" in json.loads((tmp_path / "eval-ir" / "metrics.json").read_text())
    # DCD: the imported cross-encoder picks and weights the hard negatives of a dual-encoder student.
    _run(["distill", "--method", "dcd", "--task", "retrieval", "--teacher", tmp_path / "ir", "--student", "tiny",
          "--arch", "dual", "--regions", vinvl_regions, "--annotations", demo_data / "karpathy.json", "--split", "train",
          "--batch-size", 4, "--max-steps", 1, "--device", "cpu", "--out", tmp_path / "dcd-student"])  # fmt: skip
