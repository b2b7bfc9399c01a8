"""Reading an Oscar / VinVL checkpoint directory (microsoft/Oscar, VinVL): its weights as a flat state dict (from
safetensors, or a `.bin` loaded with `torch.load(weights_only=True)` only: a pickle holding code is refused and
never runs), its BERT vocabulary and tokenizer files, and a VQA answer list from JSON (pickles are refused).
Used by `vlkd import-teacher` (docs/usage-interop.md).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.jsonfile import read_json
from vlkd_cli.models.oscar import BERT_SPECIAL_TOKENS, build_bert_tokenizer, vocab_is_cased

WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")  # preference order


def find_weights(src: Path) -> tuple[Path, list[str]]:
    """The weights file (safetensors preferred) and the names of weight files not read."""
    present = [src / name for name in WEIGHT_FILES if (src / name).is_file()]
    if not present:
        sharded = sorted(p.name for p in src.glob("*.index.json"))
        if sharded:
            raise InputError(f"sharded checkpoints ({', '.join(sharded)}) are not supported", src)
        raise InputError(f"no {' or '.join(WEIGHT_FILES)} in the checkpoint directory", src)
    return present[0], [p.name for p in present[1:]]


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} from `.safetensors` or from a `.bin` loadable with `torch.load(weights_only=True)`.

    Raises:
        InputError: Unreadable, a pickle holding code or objects, or not a flat state dict of tensors.
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path))
        except Exception as err:  # safetensors raises its own error types
            raise InputError(f"not a readable safetensors file: {_first_line(err)}", path) from err
    else:
        state = _torch_load_weights_only(path)
    if not isinstance(state, dict):
        raise InputError(f"expected a state dict (name -> tensor), found a {type(state).__name__}", path)
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError(f"expected a flat state dict of tensors; entry {key!r} is a {type(value).__name__}", path)
    return state


def _torch_load_weights_only(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise InputError(
            "refused: this pickle holds more than tensors (code or Python objects) and vlkd only loads a plain "
            f"state dict with torch.load(weights_only=True) ({_first_line(err)})",
            path,
        ) from err
    except Exception as err:  # a truncated zip, not a torch file, ...
        raise InputError(f"not a torch state dict readable with weights_only=True: {_first_line(err)}", path) from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def read_json_object(path: Path) -> dict[str, Any]:
    value = read_json(path)
    if not isinstance(value, dict):
        raise InputError("expected a JSON object", path)
    return value


def read_answers(path: Path) -> list[str]:
    """The VQA answer list from JSON: a list (index -> answer), {answer: index} (Oscar's ans2label) or
    {"index": answer} (label2ans). Pickles (Oscar's `trainval_ans2label.pkl`) are refused."""
    if not path.is_file():
        raise UsageError("answer file does not exist", path)
    with open(path, "rb") as handle:
        head = handle.read(2)
    if path.suffix in (".pkl", ".pickle") or head[:1] == b"\x80":
        raise InputError(
            "a pickle: vlkd does not load pickles; convert Oscar's ans2label once, in a Python you trust, to JSON: "
            "python -c \"import json,pickle; json.dump(pickle.load(open('trainval_ans2label.pkl','rb')), "
            "open('ans2label.json','w'))\"",
            path,
        )
    value = read_json(path)
    if isinstance(value, list):
        return value
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value.values())
    ):
        order = sorted(value.items(), key=lambda item: item[1])
        if [i for _, i in order] != list(range(len(order))):
            raise InputError("answer -> index map: the indices are not 0..N-1 exactly once", path)
        return [answer for answer, _ in order]
    if isinstance(value, dict) and value and all(str(k).isdigit() for k in value):
        if sorted(int(k) for k in value) != list(range(len(value))):
            raise InputError("index -> answer map: the indices are not 0..N-1 exactly once", path)
        return [value[str(i)] for i in range(len(value))]
    raise InputError("expected a JSON list of answers or a JSON object answer -> index / index -> answer", path)


def read_tokenizer(src: Path, lowercase: bool | None) -> tuple[Any, dict[str, Any]]:
    """Our tokenizer from the checkpoint's `vocab.txt` (+ tokenizer_config / special_tokens_map / added_tokens)."""
    vocab_path = src / "vocab.txt"
    if not vocab_path.is_file():
        raise InputError("vocab.txt is missing (Oscar checkpoints carry their BERT vocabulary)", src)
    try:
        vocab = vocab_path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the vocabulary: {err}", vocab_path) from err
    if vocab and vocab[-1] == "":
        vocab.pop()  # the final newline
    vocab = [line.rstrip("\r") for line in vocab]
    first: dict[str, int] = {}
    for line, token in enumerate(vocab):
        if token in first:
            raise InputError(
                f"token {token!r} is on lines {first[token] + 1} and {line + 1}: token ids would not be contiguous",
                vocab_path,
            )
        first[token] = line
    settings = read_json_object(src / "tokenizer_config.json") if (src / "tokenizer_config.json").is_file() else {}
    if lowercase is not None:
        lower, why = lowercase, "--lower-case/--no-lower-case"
    elif isinstance(settings.get("do_lower_case"), bool):
        lower, why = settings["do_lower_case"], "tokenizer_config.json do_lower_case"
    else:
        lower = not vocab_is_cased(vocab)
        why = "vocab.txt has " + ("upper-case pieces (cased)" if not lower else "no upper-case piece (uncased)")
    specials = _special_tokens(src)
    added = _added_tokens(src, len(vocab))
    try:
        tokenizer = build_bert_tokenizer(vocab, lowercase=lower, special_tokens=specials, added_tokens=added)
    except ValueError as err:
        raise InputError(str(err), vocab_path) from err
    info = {"vocab_size": len(tokenizer), "lowercase": lower, "lowercase_from": why, "added_tokens": added,
            "special_token_ids": {role: tokenizer.convert_tokens_to_ids(t) for role, t in
                                  {**BERT_SPECIAL_TOKENS, **specials}.items()}}  # fmt: skip
    return tokenizer, info


def _special_tokens(src: Path) -> dict[str, str]:
    path = src / "special_tokens_map.json"
    if not path.is_file():
        return {}
    raw = read_json_object(path)
    out = {}
    for role in BERT_SPECIAL_TOKENS:
        value = raw.get(f"{role}_token")
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str):
            out[role] = value
    return out


def _added_tokens(src: Path, base: int) -> list[str]:
    path = src / "added_tokens.json"
    if not path.is_file():
        return []
    raw = read_json_object(path)
    order = sorted(raw.items(), key=lambda item: item[1])
    if [i for _, i in order] != list(range(base, base + len(order))):
        raise InputError(f"added token ids must follow the vocabulary ({base}, {base + 1}, ...)", path)
    return [token for token, _ in order]
