"""WordPiece tokenizers: train one on captions, save/load HF tokenizer dirs, and fingerprint them.

Two models "share a tokenizer" iff their `tokenizer_fingerprint`s are equal: the fingerprint covers the vocabulary
in id order, the special token ids and the lowercase flag, i.e. everything that decides which id a word gets.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from vlkd_cli.errors import InputError, UsageError

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4 in a trained vocab
_SPECIAL_ROLES: tuple[str, ...] = ("pad", "unk", "cls", "sep", "mask")


def train_wordpiece_tokenizer(
    texts: Iterable[str], *, vocab_size: int = 4096, min_frequency: int = 1, extra_tokens: Sequence[str] = ()
) -> PreTrainedTokenizerFast:
    """Build an uncased BERT-style WordPiece tokenizer from training text, deterministically.

    BertNormalizer (lowercase, clean text, strip accents as BERT uncased), BertPreTokenizer, WordPiece with `##`
    continuation, `[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4`, and the BERT post-processor
    (`[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]`).

    The vocabulary is: the special tokens, every character seen (alone and as `##` continuation, so no word is
    ever [UNK]), then whole words by descending count (ties by spelling) while room is left. `tokenizers`'
    WordPiece trainer is not used: it breaks count ties in hash order, so two runs on the same text give
    different vocabularies — and a resumed or distributed run needs the very same one.

    Args:
        texts: Training texts (captions, questions, tag names...). Consumed once.
        vocab_size: Upper bound of the vocabulary (special tokens and characters always fit first).
        min_frequency: Minimum count of a word.
        extra_tokens: Words that must be single tokens (e.g. multi-word tag names); appended after the vocabulary
            when not already in it, in the given order.

    Returns:
        A fast tokenizer usable with `save_tokenizer` / `load_tokenizer`.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    characters = sorted({c for word in counts for c in word})
    vocab = list(SPECIAL_TOKENS) + characters + [f"##{c}" for c in characters]
    ranked = sorted((w for w, n in counts.items() if n >= min_frequency and len(w) > 1), key=lambda w: (-counts[w], w))
    vocab += ranked[: max(0, vocab_size - len(vocab))]
    backend = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    backend.normalizer, backend.pre_tokenizer = normalizer, pre_tokenizer
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    vocab_index = tokenizer.get_vocab()
    missing = [t for t in dict.fromkeys(extra_tokens) if t.lower() not in vocab_index]
    if missing:
        tokenizer.add_tokens(missing)
    return tokenizer


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """Load a fast tokenizer from a local HF directory (ours or a BERT-family model dir); never reaches a hub.

    Raises:
        UsageError: The directory does not exist.
        InputError: It exists but holds no loadable fast tokenizer with [CLS]/[SEP]/[PAD]/[MASK].
    """
    path = Path(directory)
    if not path.is_dir():
        raise UsageError("tokenizer directory does not exist", path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"cannot load a tokenizer: {err}", path) from err
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise InputError(f"not a fast tokenizer ({type(tokenizer).__name__})", path)
    missing = [role for role in ("cls", "sep", "pad", "mask") if getattr(tokenizer, f"{role}_token_id") is None]
    if missing:
        raise InputError(f"tokenizer has no {', '.join(missing)} token", path)
    return tokenizer


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | Path) -> None:
    """Write the tokenizer files (`tokenizer.json`, `tokenizer_config.json`, ...) into `directory` (created)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(path))


def special_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """{"pad", "unk", "cls", "sep", "mask"} -> id (a role the tokenizer lacks is left out)."""
    ids = {role: getattr(tokenizer, f"{role}_token_id") for role in _SPECIAL_ROLES}
    return {role: int(i) for role, i in ids.items() if i is not None}


def is_lowercasing(tokenizer: PreTrainedTokenizerFast) -> bool:
    """Whether the tokenizer's normalizer lowercases its input (probed, so it holds for any normalizer)."""
    normalizer = tokenizer.backend_tokenizer.normalizer
    return normalizer is not None and normalizer.normalize_str("AZ") == "az"


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerFast) -> str:
    """sha256 (hex) of the vocabulary in id order, the special token ids and the lowercase flag."""
    vocab = tokenizer.get_vocab()
    tokens = sorted((int(i), token) for token, i in vocab.items())  # [(id, token)] in id order
    payload = {"vocab": tokens, "special": special_token_ids(tokenizer), "lowercase": is_lowercasing(tokenizer)}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()
