"""Encoder presets: `BertConfig` keyword arguments for the fusion transformers of this toolkit.

`tiny` is for tests, `demo-teacher` / `demo-student` for the generated demo data, and `oscar-base`, `minivlm`,
`minilm-l6` are the shapes of the papers (OSCAR-base teacher; MiniVLM = MiniLM-L12-H384 student; MiniLM-L6).
`demo-distil` and `distil-base` have a teacher's width and half its depth (demo-teacher's, oscar-base's): the
students that `--init-from-teacher` starts from the teacher's layers (DistilBERT; DCD's `useSucc`).
The vocabulary size and special token ids are not part of a preset: they come from the tokenizer.
"""

from __future__ import annotations

from typing import Any

from vlkd_cli.errors import UsageError

BERT_DEFAULTS: dict[str, Any] = {
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
}
"""BERT-base's values of the `BertConfig` fields a shape does not set (dropout 0.1, GELU, 512 positions)."""


def _shape(layers: int, hidden: int, heads: int, ffn: int) -> dict[str, Any]:
    """BERT hyper-parameters of one shape; the rest are `BERT_DEFAULTS`."""
    return {"num_hidden_layers": layers, "hidden_size": hidden, "num_attention_heads": heads,
            "intermediate_size": ffn, **BERT_DEFAULTS}  # fmt: skip


_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": _shape(2, 64, 2, 256),
    "demo-teacher": _shape(4, 256, 4, 1024),
    "demo-student": _shape(2, 128, 4, 512),
    "demo-distil": _shape(2, 256, 4, 1024),  # demo-teacher's width, half its depth (--init-from-teacher)
    "oscar-base": _shape(12, 768, 12, 3072),
    "minivlm": _shape(12, 384, 12, 1536),
    "minilm-l6": _shape(6, 384, 12, 1536),
    "distil-base": _shape(6, 768, 12, 3072),  # oscar-base's width, half its depth (DistilBERT; --init-from-teacher)
}


def list_presets() -> list[str]:
    """Names of the known encoder presets, in definition order (smallest first for the demo ones)."""
    return list(_PRESETS)


def get_preset(name: str) -> dict[str, Any]:
    """A fresh copy of a preset's `BertConfig` kwargs.

    Raises:
        UsageError: `name` is not a known preset (the message lists the known names).
    """
    if name not in _PRESETS:
        raise UsageError(f"unknown model preset {name!r}; known: {', '.join(list_presets())}")
    return dict(_PRESETS[name])
