"""Encoder presets: the documented shapes, and a helpful miss."""

from __future__ import annotations

import pytest

from vlkd_cli.errors import UsageError
from vlkd_cli.models import get_preset, list_presets

SHAPES = {  # layers, hidden, heads, FFN
    "tiny": (2, 64, 2, 256),
    "demo-teacher": (4, 256, 4, 1024),
    "demo-student": (2, 128, 4, 512),
    "demo-distil": (2, 256, 4, 1024),
    "oscar-base": (12, 768, 12, 3072),
    "minivlm": (12, 384, 12, 1536),
    "minilm-l6": (6, 384, 12, 1536),
    "distil-base": (6, 768, 12, 3072),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_preset_shapes(name: str) -> None:
    preset = get_preset(name)
    found = (preset["num_hidden_layers"], preset["hidden_size"], preset["num_attention_heads"],
             preset["intermediate_size"])  # fmt: skip
    assert found == SHAPES[name]


def test_list_presets_names_them_all() -> None:
    assert sorted(list_presets()) == sorted(SHAPES)


def test_unknown_preset_lists_the_known_names() -> None:
    with pytest.raises(UsageError, match="unknown model preset 'tinny'; known: tiny, demo-teacher") as info:
        get_preset("tinny")
    assert info.value.exit_code == 2


def test_get_preset_returns_a_copy() -> None:
    get_preset("tiny")["hidden_size"] = 1
    assert get_preset("tiny")["hidden_size"] == 64
