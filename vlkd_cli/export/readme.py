"""The README of an exported student: the exact recipe and a self-contained PyTorch snippet per task.

The snippet never imports vlkd: it rebuilds the region embedding and the task head from `vlkd_heads.safetensors`
and `vlkd_config.json` with `torch.nn.functional`, runs the `transformers.AutoModel` of the directory, and when run
as a script prints the prediction for a random example. Its functions reproduce vlkd's computation exactly
(`vlkd_cli/structures/vl_batch.py` layout and masks, `vl_transformer.py`, the heads), which the export tests check by
extracting and executing the snippet in a process that never imports vlkd.
"""

from __future__ import annotations

import re
from typing import Any

_COMMON = """\
import json

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

DIR = "."  # this directory
cfg = json.load(open(f"{DIR}/vlkd_config.json"))
heads = load_file(f"{DIR}/vlkd_heads.safetensors")
model, tokenizer = AutoModel.from_pretrained(DIR).eval(), AutoTokenizer.from_pretrained(DIR)
L, G, R = (cfg["layout"][k] for k in ("max_text_len", "max_tag_len", "max_regions"))


def linear(x, name):
    return F.linear(x, heads[name + ".weight"], heads.get(name + ".bias"))


def norm(x, name, eps=cfg["layer_norm_eps"]):
    if name + ".weight" not in heads:  # no such LayerNorm (region embeddings of some imported Oscar models)
        return x
    return F.layer_norm(x, x.shape[-1:], heads[name + ".weight"], heads[name + ".bias"], eps)


def text_segments(text, tags):  # ids of "[CLS] text [SEP]" and of "tags [SEP]" ([] without tags)
    cap = tokenizer(text, add_special_tokens=False)["input_ids"][: L - 2]
    cap = [tokenizer.cls_token_id, *cap, tokenizer.sep_token_id]
    if tags is None or not (G and cfg["use_tags"]):
        return cap, []
    return cap, tokenizer(" ".join(tags), add_special_tokens=False)["input_ids"][: G - 1] + [tokenizer.sep_token_id]


def attention_mask(valid):  # (B, N) bool valid tokens -> (B, N, N) bool [query, key], True = may attend
    n = valid.shape[1]
    mask = valid[:, :, None] & valid[:, None, :]
    if cfg["mask_type"] == "seq2seq":  # captioning: caption tokens see earlier caption tokens, tags and regions
        pos, cap = torch.arange(n), torch.arange(n) < L
        mask &= torch.where(cap[None, :], cap[:, None] & (pos[:, None] >= pos[None, :]), True)
    return mask | (torch.eye(n, dtype=torch.bool) & ~valid[:, :, None])  # padded rows attend to themselves only


def inputs(cap, tag, features, boxes, height, width):  # one image in the layout (boxes: xyxy pixels)
    n, pad = min(len(features), R), tokenizer.pad_token_id
    ids = torch.tensor([cap + [pad] * (L - len(cap)) + tag + [pad] * (G - len(tag))])
    types = torch.tensor([[0] * L + [1] * G])
    x1, y1, x2, y2 = torch.as_tensor(boxes, dtype=torch.float32)[:n].reshape(-1, 4).unbind(1)
    geometry, feats = torch.zeros(1, R, 6), torch.zeros(1, R, cfg["region_feature_dim"])
    geometry[0, :n] = torch.stack([x1 / width, y1 / height, x2 / width, y2 / height, (x2 - x1) / width,
                                   (y2 - y1) / height], 1)
    feats[0, :n] = torch.as_tensor(features, dtype=torch.float32)[:n]
    valid = [i < len(cap) for i in range(L)] + [i < len(tag) for i in range(G)] + [i < n for i in range(R)]
    return ids, types, feats, geometry, attention_mask(torch.tensor([valid]))


def encode(ids, types, feats, geometry, mask):  # -> (B, N, H) last hidden states, as vlkd computes them
    text = model.embeddings(input_ids=ids, token_type_ids=types, position_ids=torch.arange(ids.shape[1])[None])
    regions = linear(torch.cat([feats, geometry], -1), "region_embedding.projection")
    hidden = torch.cat([text, norm(regions, "region_embedding.layer_norm", cfg["region_layer_norm_eps"])], 1)
    additive = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)[:, None]  # (B, 1, N, N)
    return model.encoder(hidden, attention_mask=additive).last_hidden_state
"""

_EXAMPLE = """\
torch.manual_seed(0)  # a random example: use your detector's region features and boxes
features, boxes = torch.randn(3, cfg["region_feature_dim"]), [[0, 0, 50, 40], [10, 5, 30, 60], [20, 20, 90, 90]]
"""

_VQA = """

def vqa_logits(hidden):  # (B, N, H) -> (B, A) answer logits; answer i is cfg["answers"][i]
VQA_HEAD    return linear(x, "vqa_head.output")


if __name__ == "__main__":
EXAMPLE    cap, tag = text_segments("what is on the table?", ["table", "cup"])
    with torch.no_grad():
        best = vqa_logits(encode(*inputs(cap, tag, features, boxes, height=100, width=100))).argmax(-1).item()
    print("answer:", cfg["answers"][best] if cfg.get("answers") else best)
"""

_ITM = """

def match_score(hidden):  # (B, N, H) -> (B,) image-text match logit, higher = better match
    return linear(torch.tanh(linear(hidden[:, 0], "itm_head.pooler")), "itm_head.score")[:, 0]

MLM
if __name__ == "__main__":
EXAMPLE    cap, tag = text_segments("a cup on a table", ["table", "cup"])
    with torch.no_grad():
        print("match logit:", match_score(encode(*inputs(cap, tag, features, boxes, height=100, width=100))).item())
"""

_MLM = """

def lm_logits(hidden):  # (..., H) -> (..., V) vocabulary logits (LM head tied to the word embeddings)
    x = norm(F.gelu(linear(hidden, "lm_head.dense")), "lm_head.layer_norm")
    return F.linear(x, model.embeddings.word_embeddings.weight, heads["lm_head.bias"])

"""

_CAPTION = """

def next_token_logits(hidden, t):  # (B, N, H) -> (B, V) logits of the token after caption position t
    x = norm(F.gelu(linear(hidden[:, t], "lm_head.dense")), "lm_head.layer_norm")
    return F.linear(x, model.embeddings.word_embeddings.weight, heads["lm_head.bias"])


def greedy_caption(tag, features, boxes, height, width, max_length=20):  # vlkd's greedy decoding
    prefix, banned = [tokenizer.cls_token_id], [tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.mask_token_id]
    for _ in range(min(max_length, L - 1)):  # each step re-runs the prefix (no cache), as in training
        logits = next_token_logits(encode(*inputs(prefix, tag, features, boxes, height, width)), len(prefix) - 1)
        logits[:, banned] = float("-inf")
        token = int(logits.argmax(-1))
        if token == tokenizer.sep_token_id:
            break
        prefix.append(token)
    return tokenizer.decode(prefix[1:], skip_special_tokens=True).strip()


if __name__ == "__main__":
EXAMPLE    _, tag = text_segments("", ["table", "cup"])
    with torch.no_grad():
        print("caption:", greedy_caption(tag, features, boxes, height=100, width=100))
"""

_DUAL = """\
import json

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer, BertConfig
from transformers.models.bert.modeling_bert import BertEncoder

DIR = "."  # this directory
cfg = json.load(open(f"{DIR}/vlkd_config.json"))
heads = load_file(f"{DIR}/vlkd_heads.safetensors")
model, tokenizer = AutoModel.from_pretrained(DIR).eval(), AutoTokenizer.from_pretrained(DIR)  # the text tower
image_tower = BertEncoder(BertConfig(**cfg["image_encoder"], attn_implementation="eager")).eval()
image_tower.load_state_dict({k[len("image_encoder."):]: v for k, v in heads.items() if k.startswith("image_encoder.")})
L, R = cfg["layout"]["max_text_len"], cfg["layout"]["max_regions"]


def linear(x, name):
    return F.linear(x, heads[name + ".weight"], heads.get(name + ".bias"))


def full_mask(valid):  # (B, n) bool -> (B, 1, n, n) additive mask; padded rows attend to themselves only
    mask = (valid[:, :, None] & valid[:, None, :]) | (torch.eye(valid.shape[1], dtype=torch.bool) & ~valid[:, :, None])
    return torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)[:, None]


def text_embeddings(ids, valid):  # (B, L) "[CLS] text [SEP] pad" ids, (B, L) bool -> (B, P) L2-normalised
    hidden = model(input_ids=ids, attention_mask=full_mask(valid)).last_hidden_state  # the standard forward
    return F.normalize(linear(hidden[:, 0], "text_projection"), dim=-1)


def image_embeddings(feats, geometry, valid):  # (B, R, D), (B, R, 6), (B, R) bool -> (B, P) L2-normalised
    x = linear(torch.cat([feats, geometry], -1), "region_embedding.projection")
    x = F.layer_norm(x, x.shape[-1:], heads["region_embedding.layer_norm.weight"],
                     heads["region_embedding.layer_norm.bias"], cfg["region_layer_norm_eps"])
    hidden = torch.cat([heads["image_token"].expand(len(x), -1, -1), x], 1)  # [IMG] + regions
    valid = torch.cat([torch.ones(len(x), 1, dtype=torch.bool), valid], 1)
    out = image_tower(hidden, attention_mask=full_mask(valid)).last_hidden_state
    return F.normalize(linear(out[:, 0], "image_projection"), dim=-1)


def text_inputs(texts):  # B strings -> (B, L) ids, (B, L) bool valid
    rows = [[tokenizer.cls_token_id, *tokenizer(t, add_special_tokens=False)["input_ids"][: L - 2],
             tokenizer.sep_token_id] for t in texts]
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (L - len(r)) for r in rows])
    return ids, torch.tensor([[i < len(r) for i in range(L)] for r in rows])


def image_inputs(features, boxes, height, width):  # one image (boxes: xyxy pixels) -> (1, R, D), (1, R, 6), (1, R)
    n = min(len(features), R)
    x1, y1, x2, y2 = torch.as_tensor(boxes, dtype=torch.float32)[:n].reshape(-1, 4).unbind(1)
    geometry, feats = torch.zeros(1, R, 6), torch.zeros(1, R, cfg["region_feature_dim"])
    geometry[0, :n] = torch.stack([x1 / width, y1 / height, x2 / width, y2 / height, (x2 - x1) / width,
                                   (y2 - y1) / height], 1)
    feats[0, :n] = torch.as_tensor(features, dtype=torch.float32)[:n]
    return feats, geometry, torch.tensor([[i < n for i in range(R)]])


if __name__ == "__main__":
EXAMPLE    with torch.no_grad():
        image = image_embeddings(*image_inputs(features, boxes, height=100, width=100))  # (1, P)
        text = text_embeddings(*text_inputs(["a cup on a table", "two dogs on the grass"]))  # (2, P)
    print("cosine scores:", (image @ text.T).tolist())  # retrieval ranks by these
"""


_VQA_HEADS = {
    "vlkd": '    x = norm(F.gelu(linear(hidden[:, 0], "vqa_head.hidden")), "vqa_head.layer_norm")\n',
    "pooled": '    x = torch.tanh(linear(hidden[:, 0], "vqa_head.pooler"))  # Oscar\'s head: BERT pooler, [ReLU MLP], linear\n'
    '    x = F.relu(linear(x, "vqa_head.hidden")) if "vqa_head.hidden.weight" in heads else x\n',
}


def readme_snippet(description: dict[str, Any]) -> str:
    """The self-contained Python snippet of an export (task-specific)."""
    task, arch = description["task"], description.get("arch", "cross")
    example = "".join(f"    {line}\n" for line in _EXAMPLE.splitlines())
    if arch == "dual":
        return _DUAL.replace("EXAMPLE", example)
    tail = {
        "vqa": _VQA.replace("VQA_HEAD", _VQA_HEADS[description.get("vqa_head", {}).get("style", "vlkd")]),
        "caption": _CAPTION,
        "retrieval": _ITM.replace("MLM", ""),
        "pretrain": _ITM.replace("MLM", _MLM),
    }
    return _COMMON + tail[task].replace("EXAMPLE", example)


def extract_snippet(readme: str) -> str:
    """The first ```python block of a README (what the tests execute)."""
    match = re.search(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    if match is None:
        raise ValueError("no ```python block in the README")
    return match.group(1)


def _bullets(items: list[str], empty: str) -> str:
    return "\n".join(f"- {item}" for item in items) if items else f"- {empty}"


def _heads_table(description: dict[str, Any]) -> str:
    """Markdown rows name | shape; the dual encoder's image tower layers are one row."""
    rows, tower = [], [name for name in description["heads"] if name.startswith("image_encoder.")]
    if tower:
        rows.append(f"| `image_encoder.layer.*` | {len(tower)} tensors: a BERT layer stack, "
                    "`vlkd_config.json[\"image_encoder\"]` |")  # fmt: skip
    rows += [f"| `{name}` | {tuple(shape)} |" for name, shape in description["heads"].items() if name not in tower]
    return "| tensor | shape |\n|---|---|\n" + "\n".join(rows)


_CROSS_RECIPE = """\
The encoder is vlkd's single-stream (Oscar-style) BERT. One sequence of N = {num_tokens} tokens per example:

    [CLS] caption [SEP] <pad to {max_text_len}> | tags [SEP] <pad to {max_tag_len}> | regions <pad to {max_regions}>

- Text positions 0..{t1} go through the model's own embeddings (`model.embeddings`) with token types 0 (caption
  segment) and 1 (tag segment) and position ids 0..{t1}, whatever the caption length.
- Tags (Oscar's object tags) are words joined by spaces: vlkd uses the category names of the image's region labels,
  in region order{tags_note}.
- Region tokens (no position, no token type) = {region_rule} with the weights `region_embedding.*` of
  `vlkd_heads.safetensors`; geometry = {geometry}, from xyxy pixel boxes of an image of W x H pixels.
- The attention mask is 2-D per example, `[query, key]`, mask type **{mask_type}**: {mask_rule} Padded keys are
  never attended; a padded query row attends only to itself. It enters the layers as an additive (B, 1, N, N)
  float mask: 0 where allowed, `torch.finfo(float32).min` elsewhere (a 4-D mask is used as given by
  `transformers`).

Exact recipe (this is what vlkd computes, to float rounding):

    text   = model.embeddings(input_ids=ids, token_type_ids=types, position_ids=torch.arange(T)[None])  # (B, T, H)
    hidden = torch.cat([text, region_tokens], dim=1)                                               # (B, N, H)
    out    = model.encoder(hidden, attention_mask=additive_mask).last_hidden_state                 # (B, N, H)

Do **not** pass the concatenation as `model(inputs_embeds=hidden, ...)`: `BertEmbeddings` would add position and
token-type embeddings to the region tokens (and to the text a second time) and apply its LayerNorm again. The
heads read `out[:, 0]` ([CLS]: VQA, ITM) or the caption positions (LM head tied to
`model.embeddings.word_embeddings.weight`)."""

_DUAL_RECIPE = """\
This is a dual encoder (two towers, cosine similarity). **The text tower is the `AutoModel`** of this directory;
the image tower, which has no token embeddings (so it is not a `BertModel`), is in `vlkd_heads.safetensors` with
the projections, rebuilt as a `transformers` `BertEncoder` layer stack from `vlkd_config.json["image_encoder"]`.

- Text: `"[CLS] text [SEP]"` padded to {max_text_len}, token type 0, positions 0..; the standard forward
  `model(input_ids=ids, attention_mask=mask)` is exactly vlkd's, with mask the additive (B, 1, L, L) float mask
  (valid tokens see valid tokens, a padded row sees only itself; a plain (B, L) padding mask gives the same states
  on the valid tokens). Embedding = L2-normalised `text_projection` of the [CLS] state.
- Image: a learned `[IMG]` token (`image_token`) followed by {max_regions} region slots, region token =
  {region_rule}, geometry = {geometry}; full mask over the valid tokens; embedding = L2-normalised
  `image_projection` of the [IMG] state.
- Score = cosine similarity of the two embeddings (`logit_scale` is the training temperature; ranking ignores it)."""

_MASK_RULES = {
    "full": "every valid token attends every valid token.",
    "seq2seq": "Oscar's captioning mask: a caption token attends the caption tokens up to itself and all tags and "
    "regions; tags and regions attend each other, never the caption.",
}


def _recipe(description: dict[str, Any]) -> str:
    layout = description["layout"]
    feature = f"feature (D={description['region_feature_dim']}) ⊕ geometry"
    eps = description.get("region_layer_norm_eps")
    region_rule = f"LayerNorm(Linear({feature}))" if eps is not None else f"Linear({feature}) (no LayerNorm)"
    tags_note = "" if description.get("use_tags") else " (this model was trained without tags: leave them out)"
    values = {**layout, "num_tokens": description["num_tokens"], "t1": description["num_text_tokens"] - 1,
              "region_rule": region_rule, "tags_note": tags_note,
              "region_feature_dim": description["region_feature_dim"], "geometry": ", ".join(description["geometry"]),
              "mask_type": description["mask_type"], "mask_rule": _MASK_RULES[description["mask_type"]]}  # fmt: skip
    template = _DUAL_RECIPE if description.get("arch") == "dual" else _CROSS_RECIPE
    return template.format(**values)


_HF_INT8 = """\
## Run it quantised (int8, CPU)

Dynamic quantisation stores the encoder's Linear weights as int8 and quantises activations per batch at run time
(CPU only). Quantise once after loading; the snippet above then runs unchanged (its heads stay float32):

```
import torch
model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
```

This is what `vlkd eval-caption|eval-vqa|eval-retrieval|benchmark-latency --precision int8` runs (there the
region embedding and head Linear layers, and a caption model's tied word-embedding decoder, are quantised too).
Check the accuracy cost on your own validation split (`--precision fp32` vs `int8`) before deploying it;
`--precision bf16` (bfloat16 autocast) is the GPU choice."""

_ONNX_INT8 = """\
## Run it quantised (int8, onnxruntime)

onnxruntime's dynamic quantisation rewrites a graph's MatMul weights to int8 (activations quantised at run time):

```
from onnxruntime.quantization import QuantType, quantize_dynamic
quantize_dynamic("{file}", "{stem}.int8.onnx", weight_type=QuantType.QInt8)
```

Run `{stem}.int8.onnx` like the float graph, and compare its outputs with the float graph's on your own inputs."""

_TORCHSCRIPT_INT8 = """\
## Run it quantised (int8)

A traced graph keeps the float weights it was traced with. For int8, quantise the `--to hf` export with
`torch.ao.quantization.quantize_dynamic` (its README shows how), or export `--to onnx` and quantise that graph with
onnxruntime's `quantize_dynamic`."""


def hf_readme(description: dict[str, Any]) -> str:
    """README.md of a `--to hf` export."""
    task, arch = description["task"], description.get("arch", "cross")
    encoder = "text tower" if arch == "dual" else "encoder"
    source = description["source"]
    lines = [
        f"# vlkd student export: {task} ({arch})",
        "",
        f"Exported by {description['exported_with']} from `{source['weights']}` (sha256 {source['sha256'][:16]}…).",
        "",
        "| file | what |",
        "|---|---|",
        f"| `config.json`, `model.safetensors` | the {encoder}: a standard `transformers` `BertModel` |",
        "| `tokenizer.json`, `tokenizer_config.json` | its tokenizer (`AutoTokenizer`) |",
        "| `vlkd_heads.safetensors` | region embedding and task head weights (plain safetensors) |",
        "| `vlkd_config.json` | layout, mask type, shapes, answers, what was stripped, provenance |",
        "",
        "## Loading",
        "",
        "```",
        "from transformers import AutoModel, AutoTokenizer",
        "model = AutoModel.from_pretrained(DIR)  # no vlkd needed",
        "tokenizer = AutoTokenizer.from_pretrained(DIR)",
        "```",
        "",
        (
            "`config.json` selects the standard `eager` attention (the same math vlkd trains with); "
            '`AutoModel.from_pretrained(DIR, attn_implementation="sdpa")` gives the same outputs to float '
            f"rounding. `pooler_output` is {description['pooler']}."
        ),
        "",
        "## Inputs and the exact recipe",
        "",
        _recipe(description),
        "",
        "## Heads (`vlkd_heads.safetensors`)",
        "",
        _heads_table(description),
        "",
        "## Run it",
        "",
        (
            "Self-contained (torch, transformers, safetensors; no vlkd). Save as `run.py` in this directory and "
            "run `python run.py`, or import its functions."
        ),
        "",
        "```python",
        readme_snippet(description).rstrip("\n"),
        "```",
        "",
        _HF_INT8,
        "",
        "## Stripped",
        "",
        "Distillation-only parts and training state are not exported:",
        "",
        _bullets(description["stripped"], "nothing: the model directory held only the student's weights"),
        "",
    ]
    return "\n".join(lines)


def graph_readme(description: dict[str, Any]) -> str:
    """README.md of a `--to torchscript|onnx` export: the graphs' inputs and outputs and how to run them."""
    fmt = description["to"]
    lines = [f"# vlkd student export: {description['task']} ({description.get('arch', 'cross')}), {fmt}", ""]
    for name, graph in description["graphs"].items():
        lines += [f"## `{graph['file']}` ({name})", "", graph["doc"], "", "| input | dtype | shape |", "|---|---|---|"]
        lines += [f"| `{i['name']}` | {i['dtype']} | {i['shape']} |" for i in graph["inputs"]]
        lines += ["", "| output | dtype | shape |", "|---|---|---|"]
        lines += [f"| `{o['name']}` | {o['dtype']} | {o['shape']} |" for o in graph["outputs"]]
        diff = graph["max_abs_diff"]
        checked = (
            f"Traced at batch {graph['traced_batch_size']}; batch sizes checked against eager PyTorch: "
            f"{graph['checked_batch_sizes']}" + (f" (max abs difference {diff:.2e})." if diff is not None else ".")
        )
        lines += ["", checked, ""]
    if fmt == "torchscript":
        lines += ["Load with `torch.jit.load(FILE)` (a TorchScript archive: load only files you trust).", ""]
        lines += [_TORCHSCRIPT_INT8, ""]
    else:
        lines += ["Run with onnxruntime: `ort.InferenceSession(FILE).run(None, {name: array, ...})`.", ""]
        first = next(iter(description["graphs"].values()))["file"]
        lines += [_ONNX_INT8.format(file=first, stem=first.removesuffix(".onnx")), ""]
    layout = (
        "Inputs follow the layout of `vlkd_config.json` (`layout`, `mask_type`, `geometry`); the `--to hf` "
        "export's README shows how to build them."
    )
    stripped = _bullets(description["stripped"], "nothing: the model directory held only the student's weights")
    lines += [layout, "", "## Stripped", "", stripped, ""]
    return "\n".join(lines)
