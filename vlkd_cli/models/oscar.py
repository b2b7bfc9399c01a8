"""Oscar / VinVL checkpoints -> vlkd task models: config translation and the state-dict key mapping.

Facts reproduced from microsoft/Oscar (`oscar/modeling/modeling_bert.py`, `run_captioning.py`, `run_vqa.py`,
`run_retrieval.py`, commit 266075f); the code is our own.

- `BertImgModel` (prefix `bert.`): BERT embeddings, encoder layers and pooler with the standard key names, plus
  `img_embedding` = Linear(img_feature_dim -> hidden) over region features that already carry the 6 box values
  (2048 + 6 = 2054 for VinVL: x1/W, y1/H, x2/W, y2/H, w/W, h/H, the layout of our `RegionEmbedding`), then an
  optional LayerNorm `bert.LayerNorm` (only when config `use_img_layernorm` is set; eps `img_layer_norm_eps`), then
  dropout. Region tokens follow the text tokens and get no position or token-type embedding (as ours).
- Text: caption / question tokens have token type 0 and the object tags type 1; captioning pads the caption to
  `max_seq_a_length` (40) before the tags (positions 40..69), the layout of `vlkd_cli.structures.vl_batch`.
- `BertForImageCaptioning`: `cls.predictions.transform.{dense, LayerNorm}`, `cls.predictions.bias` and
  `cls.predictions.decoder.weight`, tied to `bert.embeddings.word_embeddings.weight` with `--tie_weights` (every
  released VinVL caption recipe): our `TiedLMHead`. An untied decoder is refused (our head is always tied).
- `ImageBertForSequenceClassification` (VQA, retrieval): pooled = tanh(bert.pooler.dense([CLS])) -> dropout ->
  `classifier` = Linear(hidden, num_labels) (`classifier.weight`), or with config `classifier: "mlp"`
  `classifier.0` Linear(hidden, hidden * cls_hidden_scale) -> ReLU -> `classifier.2` Linear(., num_labels).
  VQA (num_labels = the answer count, BCE) -> `PooledVQAHead`. Retrieval (num_labels 2, cross-entropy; scored by
  softmax(logits)[:, 1]; or num_labels 1) -> our `ITMHead` (pooler + tanh -> dropout -> one logit) with
  score = w1 - w0, b1 - b0: sigmoid(l1 - l0) = softmax(l)[1], so both the loss and the ranking are Oscar's.
- `BertImgForPreTraining` adds `cls.seq_relationship` (not mapped: listed as ignored).

Known differences that weights cannot carry (see docs/usage-interop.md): Oscar captions by predicting a [MASK]
appended to the prefix, vlkd from the last prefix token (an imported caption model is fine-tuned before it decodes
well); Oscar's VQA and retrieval pack the tags right after the text, vlkd places them at fixed positions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from vlkd_cli.models.presets import BERT_DEFAULTS
from vlkd_cli.structures.vl_batch import GEOMETRY_DIM

# BertConfig fields taken from Oscar's config.json into our `encoder` dict (BERT defaults where absent).
_ENCODER_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
_ENCODER_OPTIONAL = {"intermediate_size": None, **BERT_DEFAULTS}  # intermediate_size default: 4 * hidden_size
_REGION_FEATURE_TYPES = ("frcnn", "faster_r-cnn", "mask_r-cnn", "")  # the dense-feature branch of BertImgModel
OSCAR_TASK_NAMES = {"image_captioning": "caption", "ir": "retrieval"}  # config `finetuning_task` -> our task


@dataclass(frozen=True)
class OscarConfig:
    """What an Oscar `config.json` says about the network (see the module docstring).

    Attributes:
        encoder: Our encoder config dict (BertConfig fields, `model_type` bert, `pad_token_id`).
        img_feature_dim: Input width of `img_embedding` (2054 for VinVL: 2048 + 6 box values).
        img_feature_type: As in the config (e.g. frcnn); informative.
        use_img_layernorm: Whether Oscar applies `bert.LayerNorm` after `img_embedding`.
        img_layer_norm_eps: Its epsilon.
        num_labels: Classifier outputs (None when the config has none).
        classifier: "linear" or "mlp".
        cls_hidden_scale: MLP width factor.
        finetuning_task: As in the config (image_captioning, vqa_text, ir, ...), or None.
        tie_weights: The captioning `tie_weights` flag, or None when absent.
    """

    encoder: dict[str, Any]
    img_feature_dim: int
    img_feature_type: str
    use_img_layernorm: bool
    img_layer_norm_eps: float
    num_labels: int | None
    classifier: str
    cls_hidden_scale: int
    finetuning_task: str | None
    tie_weights: bool | None

    @property
    def region_feature_dim(self) -> int:
        """D of our region features: `img_feature_dim` minus the 6 box values."""
        return self.img_feature_dim - GEOMETRY_DIM

    @property
    def hidden_size(self) -> int:
        return int(self.encoder["hidden_size"])


def _positive_int(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"config.json: {key} must be a positive integer, got {value!r}")
    return value


def parse_oscar_config(raw: Mapping[str, Any], *, pad_token_id: int = 0) -> OscarConfig:
    """Read an Oscar / VinVL `config.json` (as `save_pretrained` of Oscar's models writes it).

    Args:
        raw: The parsed config.json.
        pad_token_id: The tokenizer's [PAD] id (BERT's 0), recorded in the encoder config.

    Raises:
        ValueError: Not an Oscar BERT config, or a variant we cannot map (discrete-code image features, no image
            embedding, a non-BERT model type).
    """
    if raw.get("model_type", "bert") != "bert":
        raise ValueError(f"config.json: model_type {raw.get('model_type')!r} is not bert")
    encoder: dict[str, Any] = {key: _positive_int(raw, key) for key in _ENCODER_REQUIRED}
    for key, default in _ENCODER_OPTIONAL.items():
        encoder[key] = raw.get(key, default)
    if encoder["intermediate_size"] is None:
        encoder["intermediate_size"] = 4 * encoder["hidden_size"]
    encoder.update(model_type="bert", pad_token_id=int(pad_token_id))
    if "img_feature_dim" not in raw:
        raise ValueError("config.json has no img_feature_dim: not an Oscar/VinVL (BertImgModel) checkpoint")
    img_dim = _positive_int(raw, "img_feature_dim")
    if img_dim <= GEOMETRY_DIM:
        raise ValueError(f"config.json: img_feature_dim {img_dim} leaves no feature next to the 6 box values")
    feature_type = str(raw.get("img_feature_type") or "")
    if feature_type.startswith("dis_code") or feature_type not in _REGION_FEATURE_TYPES:
        raise ValueError(
            f"config.json: img_feature_type {feature_type!r} is not a dense region feature "
            f"(supported: {', '.join(t for t in _REGION_FEATURE_TYPES if t)})"
        )
    classifier = str(raw.get("classifier") or "linear")
    if classifier not in ("linear", "mlp"):
        raise ValueError(f"config.json: classifier {classifier!r} is neither linear nor mlp")
    num_labels = raw.get("num_labels")
    return OscarConfig(
        encoder=encoder,
        img_feature_dim=img_dim,
        img_feature_type=feature_type,
        use_img_layernorm=bool(raw.get("use_img_layernorm") or False),
        img_layer_norm_eps=float(raw.get("img_layer_norm_eps", 1e-12)),
        num_labels=int(num_labels) if isinstance(num_labels, int) and not isinstance(num_labels, bool) else None,
        classifier=classifier,
        cls_hidden_scale=int(raw.get("cls_hidden_scale") or 2),
        finetuning_task=str(raw["finetuning_task"]) if raw.get("finetuning_task") else None,
        tie_weights=bool(raw["tie_weights"]) if "tie_weights" in raw else None,
    )


def infer_task(config: OscarConfig, state: Mapping[str, Tensor]) -> tuple[str | None, str]:
    """(task, how it was decided) from the config's `finetuning_task`, else from the head keys; (None, why) when
    the checkpoint does not say (e.g. a pre-training checkpoint: MLM and ITM heads)."""
    name = (config.finetuning_task or "").lower()
    if name in OSCAR_TASK_NAMES:
        return OSCAR_TASK_NAMES[name], f"config finetuning_task {config.finetuning_task!r}"
    if name.startswith("vqa"):
        return "vqa", f"config finetuning_task {config.finetuning_task!r}"
    if any(k.startswith("cls.seq_relationship.") for k in state):
        return None, "a pre-training checkpoint (cls.predictions + cls.seq_relationship)"
    output = classifier_output(state)
    if output is not None:
        rows = state[output].shape[0]
        return ("retrieval" if rows <= 2 else "vqa"), f"state dict: {output} has {rows} outputs"
    if any(k.startswith("cls.predictions.") for k in state):
        return "caption", "state dict: cls.predictions (captioning LM head)"
    return None, "no task head in the state dict"


def classifier_output(state: Mapping[str, Tensor]) -> str | None:
    """The key of the classifier's last weight (`classifier.weight`, or the highest `classifier.N.weight`)."""
    if "classifier.weight" in state:
        return "classifier.weight"
    indexed = [int(m.group(1)) for k in state if (m := re.fullmatch(r"classifier\.(\d+)\.weight", k))]
    return f"classifier.{max(indexed)}.weight" if indexed else None


def vlkd_model_options(config: OscarConfig, task: str) -> dict[str, Any]:
    """The optional model-config keys that make our modules compute what Oscar's do (see `factory.py`)."""
    options: dict[str, Any] = {"region_layer_norm": config.use_img_layernorm}
    if config.use_img_layernorm:
        options["region_layer_norm_eps"] = config.img_layer_norm_eps
    if task == "vqa":
        options["vqa_head"] = {
            "style": "pooled",
            "classifier": config.classifier,
            "hidden_scale": config.cls_hidden_scale,
        }
    return options


def normalize_keys(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[tuple[str, str]]]:
    """Undo two harmless naming variants: a `module.` prefix on every key (a DataParallel save) and the
    `gamma`/`beta` LayerNorm names of old BERT checkpoints. Returns the state and the (old, new) renames."""
    renames: list[tuple[str, str]] = []
    strip = bool(state) and all(k.startswith("module.") for k in state)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new = key[len("module.") :] if strip else key
        new = re.sub(r"(LayerNorm)\.gamma$", r"\1.weight", new)
        new = re.sub(r"(LayerNorm)\.beta$", r"\1.bias", new)
        if new in out:
            raise ValueError(f"state dict holds both {key!r} and another key that also means {new!r}")
        if new != key:
            renames.append((key, new))
        out[new] = value
    return out, renames


VOCABULARY_KEYS: tuple[str, ...] = (
    "bert.embeddings.word_embeddings.weight",
    "cls.predictions.bias",
    "cls.predictions.decoder.weight",
    "cls.predictions.decoder.bias",
)


def trim_vocabulary(state: dict[str, Tensor], rows: int) -> list[str]:
    """Cut the vocabulary-sized tensors to the tokenizer's `rows` tokens (in place); returns the keys cut.

    A table padded beyond `vocab.txt` (e.g. to a multiple of 8) has rows no token maps to: no input reaches them and
    an output there has no text. vlkd sizes every table by its tokenizer (a preset student gets `len(tokenizer)`
    rows), so the teacher's logits line up with the student's only without those rows.
    """
    cut = []
    for key in VOCABULARY_KEYS:
        if key in state and state[key].shape[0] > rows:
            state[key] = state[key][:rows].clone()
            cut.append(key)
    return cut


@dataclass
class KeyMapping:
    """The result of `map_state_dict`.

    Attributes:
        tensors: Our key -> tensor (converted where noted in `loaded`).
        loaded: Our key -> the source key(s) it came from (and the conversion, if any).
        ignored: Source key -> why it is known and not needed.
        unknown: Source keys that no rule knows (kept out of the model, listed).
        missing: Our keys that no source key provides (they keep their fresh initialisation).
    """

    tensors: dict[str, Tensor] = field(default_factory=dict)
    loaded: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


_BODY_PREFIXES = {"bert.embeddings.": "vl.encoder.embeddings.", "bert.encoder.": "vl.encoder.encoder."}
_LM_HEAD = {
    "cls.predictions.transform.dense.weight": "lm_head.dense.weight",
    "cls.predictions.transform.dense.bias": "lm_head.dense.bias",
    "cls.predictions.transform.LayerNorm.weight": "lm_head.layer_norm.weight",
    "cls.predictions.transform.LayerNorm.bias": "lm_head.layer_norm.bias",
    "cls.predictions.bias": "lm_head.bias",
}


def is_body_key(key: str) -> bool:
    """Whether one of our keys belongs to the transformer body (embeddings, layers, region projection): a
    checkpoint missing any of these is not a usable Oscar checkpoint."""
    return key.startswith("vl.") and not key.startswith("vl.region_embedding.layer_norm.")


def map_state_dict(
    state: Mapping[str, Tensor], config: OscarConfig, task: str, target: Mapping[str, Tensor]
) -> KeyMapping:
    """Map an Oscar state dict onto our task model's keys.

    Args:
        state: The checkpoint's tensors (after `normalize_keys`).
        config: Its parsed config.
        task: caption, vqa or retrieval.
        target: Our model's `state_dict()` (names and shapes to fill).

    Returns:
        The mapping; every source key ends up in exactly one of `loaded` (as a source), `ignored` or `unknown`.

    Raises:
        ValueError: A tensor whose shape differs from our module's, an untied caption decoder, or a head we cannot
            represent (an MLP retrieval classifier, a LayerNorm MLP classifier).
    """
    if task not in ("caption", "vqa", "retrieval"):
        raise ValueError(f"task must be caption, vqa or retrieval, got {task!r}")
    result = KeyMapping()
    for key in sorted(state):
        _map_one(key, state, config, task, target, result)
    result.missing = sorted(k for k in target if k not in result.tensors)
    return result


def _map_one(key: str, state: Mapping[str, Tensor], config: OscarConfig, task: str, target: Mapping[str, Tensor],
             result: KeyMapping) -> None:  # fmt: skip
    for source, ours in _BODY_PREFIXES.items():
        if key.startswith(source):
            if key.endswith(("embeddings.position_ids", "embeddings.token_type_ids")):
                result.ignored[key] = "an index buffer, recomputed by the encoder"
                return
            _put(result, target, ours + key[len(source) :], state[key], key)
            return
    if key.startswith("bert.img_embedding."):
        _put(result, target, "vl.region_embedding.projection." + key.rsplit(".", 1)[1], state[key], key)
    elif key.startswith("bert.LayerNorm."):
        if config.use_img_layernorm:
            _put(result, target, "vl.region_embedding.layer_norm." + key.rsplit(".", 1)[1], state[key], key)
        else:
            result.ignored[key] = "config use_img_layernorm is off: Oscar does not apply this LayerNorm"
    elif key.startswith("bert.pooler."):
        _map_pooler(key, state, task, target, result)
    elif key.startswith("cls.predictions."):
        _map_lm_head(key, state, task, target, result)
    elif key.startswith("cls.seq_relationship."):
        result.ignored[key] = "pre-training image-text head (Oscar's contrastive labels): not mapped"
    elif key.startswith("classifier."):
        _map_classifier(key, state, config, task, target, result)
    else:
        result.unknown.append(key)


def _put(result: KeyMapping, target: Mapping[str, Tensor], ours: str, tensor: Tensor, source: str) -> None:
    """Place a tensor under our key after checking the shape; a key we do not have is unknown."""
    if ours not in target:
        result.unknown.append(source)
        return
    if tuple(tensor.shape) != tuple(target[ours].shape):
        raise ValueError(f"{source} has shape {tuple(tensor.shape)}, {ours} needs {tuple(target[ours].shape)}")
    result.tensors[ours] = tensor
    result.loaded[ours] = source


def _map_pooler(key: str, state: Mapping[str, Tensor], task: str, target: Mapping[str, Tensor],
                result: KeyMapping) -> None:  # fmt: skip
    if task == "caption":
        result.ignored[key] = "BERT pooler: unused by captioning"
        return
    if not key.startswith("bert.pooler.dense."):
        result.unknown.append(key)
        return
    head = "vqa_head" if task == "vqa" else "itm_head"
    _put(result, target, f"{head}.pooler.{key.rsplit('.', 1)[1]}", state[key], key)


def _map_lm_head(key: str, state: Mapping[str, Tensor], task: str, target: Mapping[str, Tensor],
                 result: KeyMapping) -> None:  # fmt: skip
    if task != "caption":
        result.ignored[key] = f"captioning / MLM head: unused by the {task} model"
        return
    if key in _LM_HEAD:
        _put(result, target, _LM_HEAD[key], state[key], key)
    elif key == "cls.predictions.decoder.weight":
        _check_tied(state, key, "bert.embeddings.word_embeddings.weight")
        result.ignored[key] = "tied: equal to bert.embeddings.word_embeddings.weight (our LM head reads that table)"
    elif key == "cls.predictions.decoder.bias":
        _check_tied(state, key, "cls.predictions.bias")
        result.ignored[key] = "tied: equal to cls.predictions.bias"
    else:
        result.unknown.append(key)


def _check_tied(state: Mapping[str, Tensor], key: str, tied_to: str) -> None:
    other = state.get(tied_to)
    if other is None or other.shape != state[key].shape or not torch.equal(other, state[key]):
        diff = ""
        if other is not None and other.shape == state[key].shape:
            diff = f" (max abs difference {float((other.float() - state[key].float()).abs().max()):.3g})"
        raise ValueError(
            f"{key} differs from {tied_to}{diff}: an untied LM head (trained without --tie_weights); vlkd's caption "
            "head is always tied to the word embeddings, so these weights cannot be represented"
        )


def _map_classifier(key: str, state: Mapping[str, Tensor], config: OscarConfig, task: str,
                    target: Mapping[str, Tensor], result: KeyMapping) -> None:  # fmt: skip
    if task == "caption":
        result.ignored[key] = "classification head: unused by captioning"
        return
    layers = sorted({m.group(1) for k in state if (m := re.fullmatch(r"classifier\.(\d+)\.(weight|bias)", k))})
    if "3" in layers:
        raise ValueError(
            "classifier.0/classifier.2/classifier.3 is Oscar's LayerNorm MLP head of the multiple-choice (NLVR2) "
            "models, not a VQA or retrieval head"
        )
    name = key.rsplit(".", 1)[1]
    if task == "vqa":
        if config.classifier == "mlp":
            ours = {"classifier.0": "vqa_head.hidden", "classifier.2": "vqa_head.output"}.get(key.rsplit(".", 1)[0])
        else:
            ours = "vqa_head.output" if key.count(".") == 1 else None
        if ours is None:
            result.unknown.append(key)
        else:
            _put(result, target, f"{ours}.{name}", state[key], key)
        return
    if layers or config.classifier == "mlp":
        raise ValueError(
            "classifier.0.weight / classifier.2.weight: an MLP retrieval classifier; vlkd's ITM head is one linear "
            "score over the pooled [CLS] state, so this head cannot be represented"
        )
    _map_itm_score(key, name, state[key], target, result)


def _map_itm_score(key: str, name: str, tensor: Tensor, target: Mapping[str, Tensor], result: KeyMapping) -> None:
    """Oscar's 2-way match classifier -> one logit l1 - l0 (sigmoid(l1 - l0) = softmax(l)[1]); 1-way as is."""
    ours = f"itm_head.score.{name}"
    rows = tensor.shape[0]
    if rows == 2:
        _put(result, target, ours, (tensor[1] - tensor[0]).unsqueeze(0), key)
        result.loaded[ours] = f"{key} (row 1 - row 0: the 'match' log-odds of the 2-way softmax)"
    elif rows == 1:
        _put(result, target, ours, tensor, key)
    else:
        raise ValueError(f"{key} has {rows} outputs; a retrieval (image-text match) classifier has 1 or 2")


def check_answers(answers: Iterable[str], num_labels: int | None) -> list[str]:
    """A VQA answer list (index -> answer) checked against the classifier's output count."""
    answers = list(answers)
    if not answers or not all(isinstance(a, str) for a in answers):
        raise ValueError("the answer list must be a non-empty list of strings")
    if len(set(answers)) != len(answers):
        raise ValueError("the answer list has duplicate answers")
    if num_labels is not None and len(answers) != num_labels:
        raise ValueError(f"{len(answers)} answers for a classifier with {num_labels} outputs")
    return answers


BERT_SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}


def vocab_is_cased(vocab: Iterable[str]) -> bool:
    """Whether a WordPiece vocabulary holds upper-case word pieces (a cased model) besides `[...]` specials."""
    return any(t != t.lower() for t in vocab if not (t.startswith("[") and t.endswith("]")))


def build_bert_tokenizer(
    vocab: list[str],
    *,
    lowercase: bool,
    special_tokens: Mapping[str, str] | None = None,
    added_tokens: Iterable[str] = (),
):
    """A fast BERT WordPiece tokenizer equal to the one a `vocab.txt` defines (HF `BertTokenizer` rules: clean text,
    CJK characters split, accents stripped iff lower-casing, `##` continuations, 100 characters per word at most).

    Args:
        vocab: The lines of `vocab.txt`; id = line number (a repeated token keeps its last id, as HF reads it).
        lowercase: Lower-case (and strip accents) before splitting (`do_lower_case`).
        special_tokens: Role (pad, unk, cls, sep, mask) -> token; BERT's names by default.
        added_tokens: Tokens appended after the vocabulary, in id order (`added_tokens.json`).

    Raises:
        ValueError: A special token that is not in the vocabulary.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = {**BERT_SPECIAL_TOKENS, **(special_tokens or {})}
    index = {token: i for i, token in enumerate(vocab)}
    absent = [f"{role} {token!r}" for role, token in specials.items() if token not in index]
    if absent:
        raise ValueError(f"special tokens not in the vocabulary: {', '.join(absent)}")
    backend = Tokenizer(models.WordPiece(index, unk_token=specials["unk"], max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = specials["cls"], specials["sep"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, index[cls]), (sep, index[sep])],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=specials["pad"],
        unk_token=specials["unk"],
        cls_token=cls,
        sep_token=sep,
        mask_token=specials["mask"],
    )
    added = [t for t in added_tokens if t not in index]
    if added:
        tokenizer.add_tokens(added)
    return tokenizer
