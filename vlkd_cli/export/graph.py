"""`vlkd export --to torchscript|onnx`: the inference graph of a task model, traced on fixed-layout inputs.

Graphs (every tensor input has the batch as its first dimension; the other dimensions are fixed by the layout):

- vqa: `answer_logits` (B, A) from the five layout tensors (ids, token types, region features, geometry, mask);
- retrieval (cross) and pretrain: `match_logits` (B,) from the same inputs (the ITM head);
- caption: `next_token_logits` (B, V) after caption position `positions` (B,): ONE decoding step. Beam and greedy
  search have data-dependent loops (stop at [SEP], beams that finish) that a trace cannot hold, so the exported
  graph is the per-step scorer and decoding stays in the caller (re-run the prefix each step, as vlkd does);
- dual: two graphs, `dual_image` (region features, geometry, region mask -> `image_embeds` (B, P)) and
  `dual_text` (ids, valid mask -> `text_embeds` (B, P)), each L2-normalised; scores are their dot products.

TorchScript uses `torch.jit.trace` (deprecated by PyTorch in favour of `torch.export`, still working); ONNX uses
`torch.onnx.export` (the dynamo exporter: needs the `onnx` and `onnxscript` packages, never required by vlkd) with
a dynamic batch dimension. Every graph is checked against the eager model on example inputs at several batch sizes
before the export is written; a graph that only reproduces eager at the traced batch size is marked fixed-batch.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vlkd_cli.errors import RunError, UsageError
from vlkd_cli.models.dual_encoder import DualEncoder
from vlkd_cli.models.task_model import TaskModel
from vlkd_cli.models.tokenizer import load_tokenizer
from vlkd_cli.structures.vl_batch import VLBatch, build_batch

TOLERANCE = 1e-5
CHECK_BATCH_SIZES = (1, 8)
_SUFFIX = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}
_CROSS_INPUTS = ("input_ids", "token_type_ids", "region_features", "region_boxes", "attention_mask")


def require_onnx() -> None:
    """Exit 2 naming the packages when ONNX export cannot run here (they are never vlkd dependencies)."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"--to onnx needs the {' and '.join(missing)} package(s): pip install {' '.join(missing)}")


# ------------------------------------------------------------------------------------------------ graph modules


def _vl_batch(input_ids: Tensor, token_type_ids: Tensor, region_features: Tensor, region_boxes: Tensor,
              attention_mask: Tensor, max_text_len: int, mask_type: str) -> VLBatch:  # fmt: skip
    """A VLBatch of graph inputs (the validity masks are not read by the transformer's forward)."""
    return VLBatch(input_ids, token_type_ids, torch.ones_like(input_ids, dtype=torch.bool), region_features,
                   region_boxes, torch.ones_like(region_features[..., 0], dtype=torch.bool), attention_mask,
                   max_text_len, mask_type)  # fmt: skip


class CrossGraph(nn.Module):
    """Layout tensors -> the task output of a cross-encoder (VQA answer logits or ITM match logits).

    Args:
        model: A VQAModel, ITMModel or PretrainModel in eval mode.
        head: "vqa" or "itm".
    """

    def __init__(self, model: TaskModel, head: str) -> None:
        super().__init__()
        self.model, self.head = model, head
        self.max_text_len, self.mask_type = model.layout["max_text_len"], model.mask_type

    def forward(self, input_ids: Tensor, token_type_ids: Tensor, region_features: Tensor, region_boxes: Tensor,
                attention_mask: Tensor) -> Tensor:  # fmt: skip
        batch = _vl_batch(input_ids, token_type_ids, region_features, region_boxes, attention_mask,
                          self.max_text_len, self.mask_type)  # fmt: skip
        cls_state = self.model.vl(batch).last_hidden_state[:, 0]  # (B, D)
        if self.head == "vqa":
            return self.model.vqa_head(cls_state)  # (B, A)
        return self.model.itm_head(cls_state)  # (B,)


class CaptionStepGraph(nn.Module):
    """One decoding step: layout tensors + the position of each row's last prefix token -> next-token logits."""

    def __init__(self, model: TaskModel) -> None:
        super().__init__()
        self.model = model
        self.max_text_len, self.mask_type = model.layout["max_text_len"], model.mask_type

    def forward(self, input_ids: Tensor, token_type_ids: Tensor, region_features: Tensor, region_boxes: Tensor,
                attention_mask: Tensor, positions: Tensor) -> Tensor:  # fmt: skip
        batch = _vl_batch(input_ids, token_type_ids, region_features, region_boxes, attention_mask,
                          self.max_text_len, self.mask_type)  # fmt: skip
        hidden = self.model.vl(batch).last_hidden_state  # (B, N, D)
        index = positions[:, None, None].expand(-1, 1, hidden.shape[-1])  # (B, 1, D)
        state = hidden.gather(1, index)[:, 0]  # (B, D)
        return self.model.lm_head(state, self.model.vl.word_embeddings.weight)  # (B, V)


class DualImageGraph(nn.Module):
    def __init__(self, model: DualEncoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, region_features: Tensor, region_boxes: Tensor, region_mask: Tensor) -> Tensor:
        return self.model.encode_image(region_features, region_boxes, region_mask)  # (B, P)


class DualTextGraph(nn.Module):
    def __init__(self, model: DualEncoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, text_mask: Tensor) -> Tensor:
        return self.model.encode_text(input_ids, text_mask)  # (B, P)


# ------------------------------------------------------------------------------------------------ specs


@dataclass
class GraphSpec:
    """A graph to export: its module, input builder and documentation.

    Attributes:
        name: File stem (`<name>.torchscript.pt` / `<name>.onnx`).
        module: The eval-mode graph module.
        input_names, output_names: Names in call order.
        inputs: batch size -> example input tensors (deterministic).
        eager: The reference: the vlkd model's own inference call on the same inputs.
        doc: One paragraph for the README.
    """

    name: str
    module: nn.Module
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    inputs: Callable[[int], tuple[Tensor, ...]]
    eager: Callable[..., Tensor]
    doc: str


def example_batch(model: TaskModel, tokenizer, batch_size: int, *, seed: int = 0) -> VLBatch:
    """A deterministic batch in the model's layout: short texts, tags, 1..R random regions per row."""
    generator = torch.Generator().manual_seed(seed + batch_size)
    layout, dim = model.layout, int(model.config["region_feature_dim"])
    words = ["a", "photo", "of", "two", "dogs", "on", "the", "grass", "near", "table"]
    texts = [" ".join(words[: 2 + i % 7]) for i in range(batch_size)]
    tags = [words[3 + i % 4 : 6 + i % 4] for i in range(batch_size)] if layout["max_tag_len"] > 0 else None
    counts = [1 + (3 * i) % max(1, layout["max_regions"]) for i in range(batch_size)]
    feats = [torch.randn(n, dim, generator=generator) for n in counts]
    boxes = []
    for n in counts:
        xy = torch.rand(n, 2, generator=generator) * 40
        boxes.append(torch.cat([xy, xy + 1 + torch.rand(n, 2, generator=generator) * 50], 1))
    sizes = [(100.0, 120.0)] * batch_size
    return build_batch(tokenizer, texts, tags, feats, boxes, sizes, **model.batch_kwargs())


def _cross_inputs(batch: VLBatch) -> tuple[Tensor, ...]:
    return batch.input_ids, batch.token_type_ids, batch.region_features, batch.region_boxes, batch.attention_mask


def _caption_inputs(model: TaskModel, tokenizer, batch_size: int) -> tuple[Tensor, ...]:
    """Rows with caption prefixes of different lengths ([CLS] + some tokens), as in the middle of decoding."""
    from vlkd_cli.structures.vl_batch import with_caption_prefix

    batch = example_batch(model, tokenizer, batch_size)
    length = min(4, batch.max_text_len)
    prefix = batch.caption_ids[:, :length].clone()  # (B, t)
    batch = with_caption_prefix(batch, prefix, model.special_token_ids["pad"])
    positions = torch.arange(batch_size) % length  # (B,) position of each row's "last" prefix token
    return (*_cross_inputs(batch), positions)


def graph_specs(model: TaskModel, tokenizer) -> list[GraphSpec]:
    """The graphs of a task model (see the module docstring)."""
    task = model.config["task"]
    if isinstance(model, DualEncoder):

        def image_inputs(b: int) -> tuple[Tensor, ...]:
            batch = example_batch(model, tokenizer, b)
            return batch.region_features, batch.region_boxes, batch.region_mask

        def text_inputs(b: int) -> tuple[Tensor, ...]:
            batch = example_batch(model, tokenizer, b)
            return batch.caption_ids, batch.caption_mask

        return [
            GraphSpec("dual_image", DualImageGraph(model), ("region_features", "region_boxes", "region_mask"),
                      ("image_embeds",), image_inputs, model.encode_image,
                      "Image tower: [IMG] + region tokens -> L2-normalised image embedding."),
            GraphSpec("dual_text", DualTextGraph(model), ("input_ids", "text_mask"), ("text_embeds",), text_inputs,
                      model.encode_text, "Text tower: `[CLS] text [SEP] pad` -> L2-normalised text embedding."),
        ]  # fmt: skip

    def cross_inputs(b: int) -> tuple[Tensor, ...]:
        return _cross_inputs(example_batch(model, tokenizer, b))

    def as_batch(*tensors: Tensor) -> VLBatch:
        return _vl_batch(*tensors[:5], model.layout["max_text_len"], model.mask_type)

    if task == "vqa":
        return [GraphSpec("vqa", CrossGraph(model, "vqa"), _CROSS_INPUTS, ("answer_logits",), cross_inputs,
                          lambda *t: model.vqa_head(model.vl(as_batch(*t)).last_hidden_state[:, 0]),
                          "VQA: answer logits over `vlkd_config.json[\"answers\"]`.")]  # fmt: skip
    if task in ("retrieval", "pretrain"):
        return [GraphSpec("itm", CrossGraph(model, "itm"), _CROSS_INPUTS, ("match_logits",), cross_inputs,
                          lambda *t: model.itm_head(model.vl(as_batch(*t)).last_hidden_state[:, 0]),
                          "Image-text matching: one match logit per (image, text) pair, higher = better.")]  # fmt: skip

    def caption_eager(*t: Tensor) -> Tensor:
        hidden = model.vl(as_batch(*t)).last_hidden_state
        return model.lm_head(hidden[torch.arange(hidden.shape[0]), t[5]], model.vl.word_embeddings.weight)

    doc = ("Caption decoding step: logits of the token after caption position `positions` (put the prefix "
           "`[CLS] w1 .. wt` in the caption segment, mark it valid, rebuild the seq2seq mask, pass t). Beam/greedy "
           "search loops do not trace: run them around this graph.")  # fmt: skip
    return [GraphSpec("caption_step", CaptionStepGraph(model), (*_CROSS_INPUTS, "positions"), ("next_token_logits",),
                      lambda b: _caption_inputs(model, tokenizer, b), caption_eager, doc)]  # fmt: skip


# ------------------------------------------------------------------------------------------------ export


def _describe(tensor: Tensor, name: str) -> dict[str, Any]:
    shape = ", ".join(["B", *(str(n) for n in tensor.shape[1:])])
    return {"name": name, "dtype": str(tensor.dtype).replace("torch.", ""), "shape": f"({shape})"}


def trace_torchscript(spec: GraphSpec, example: tuple[Tensor, ...]) -> torch.jit.ScriptModule:
    """`torch.jit.trace` of a graph in eval mode, without its deprecation / tracer warnings on the console."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(spec.module.eval(), example, check_trace=False)


def export_onnx(spec: GraphSpec, example: tuple[Tensor, ...], path: Path) -> None:
    """`torch.onnx.export` (dynamo) with a dynamic batch dimension on every input; one self-contained file."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic = {name: {0: batch} for name in spec.input_names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(spec.module.eval(), example, str(path), input_names=list(spec.input_names),
                          output_names=list(spec.output_names), dynamic_shapes=dynamic, external_data=False,
                          dynamo=True, verbose=False)  # fmt: skip


def onnx_runner(path: Path) -> Callable[..., Tensor] | None:
    """A callable running an ONNX file with onnxruntime, or None when onnxruntime is not installed."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(*tensors: Tensor) -> Tensor:
        feeds = {name: t.numpy() for name, t in zip(names, tensors, strict=True)}
        return torch.from_numpy(session.run(None, feeds)[0])

    return run


def check_graph(run: Callable[..., Tensor], spec: GraphSpec, batch_sizes: list[int]) -> dict[int, float]:
    """Max |graph - eager| per batch size (inf when the graph fails at that size)."""
    diffs = {}
    for b in batch_sizes:
        example = spec.inputs(b)
        reference = spec.eager(*example)
        try:
            output = run(*example)
            diffs[b] = float((output - reference).abs().max()) if output.shape == reference.shape else float("inf")
        except Exception:  # noqa: BLE001  (a fixed-shape graph may refuse another batch size)
            diffs[b] = float("inf")
    return diffs


def export_graph(spec: GraphSpec, out: Path, *, fmt: str, batch_size: int) -> dict[str, Any]:
    """Write one graph file into `out` and check it; returns its description for `vlkd_config.json`.

    Raises:
        RunError: The graph does not reproduce the eager model at the traced batch size.
    """
    file = f"{spec.name}{_SUFFIX[fmt]}"
    example = spec.inputs(batch_size)
    if fmt == "torchscript":
        traced = trace_torchscript(spec, example)
        traced.save(str(out / file))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run: Callable[..., Tensor] | None = torch.jit.load(str(out / file))
    else:
        export_onnx(spec, example, out / file)
        run = onnx_runner(out / file)
    checked: dict[int, float] = {}
    if run is not None:
        checked = check_graph(run, spec, sorted({batch_size, *CHECK_BATCH_SIZES}))
        if checked[batch_size] > TOLERANCE:
            raise RunError(f"the {fmt} graph {spec.name} differs from eager by {checked[batch_size]:.3g} "
                           f"at batch {batch_size} (tolerance {TOLERANCE})")  # fmt: skip
    good = sorted(b for b, d in checked.items() if d <= TOLERANCE)
    reference = spec.eager(*example)
    return {
        "file": file,
        "doc": spec.doc,
        "inputs": [_describe(t, n) for t, n in zip(example, spec.input_names, strict=True)],
        "outputs": [_describe(reference, spec.output_names[0])],
        "traced_batch_size": batch_size,
        "checked_batch_sizes": good if run is not None else "not checked (onnxruntime is not installed)",
        "dynamic_batch": bool(good) and good != [batch_size],
        "max_abs_diff": max((checked[b] for b in good), default=None),
    }


def write_graph_export(source, out: Path, *, fmt: str, batch_size: int) -> tuple[list[str], dict[str, float | None]]:
    """Fill `out` with the graphs of `source.model`, the tokenizer, `vlkd_config.json` and a README."""
    from vlkd_cli.export.hf import EXPORT_CONFIG_NAME, README_NAME, export_description, split_weights, write_tokenizer
    from vlkd_cli.export.readme import graph_readme

    if fmt == "onnx":
        require_onnx()
    model = source.model.eval()
    tokenizer = load_tokenizer(source.model_dir)
    graphs = {
        spec.name: export_graph(spec, out, fmt=fmt, batch_size=batch_size) for spec in graph_specs(model, tokenizer)
    }
    _, heads = split_weights(model)
    description = export_description(source, heads, fmt)
    description["graphs"] = graphs
    del description["heads"], description["pooler"]  # the weights live in the graphs
    write_tokenizer(source.model_dir, out)
    (out / EXPORT_CONFIG_NAME).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    (out / README_NAME).write_text(graph_readme(description), encoding="utf-8")
    checks = {name: graph["max_abs_diff"] for name, graph in graphs.items()}
    return sorted(p.name for p in out.iterdir()), checks
