"""`vlkd export`: a trained student becomes a clean Hugging Face directory, or a traced inference graph.

`--to hf` writes, into one directory::

    config.json + model.safetensors     a standard `transformers` BertModel (loadable by `AutoModel`)
    tokenizer.json, tokenizer_config.json ...      loadable by `AutoTokenizer`
    vlkd_heads.safetensors              region embedding + task head(s) (+ the dual encoder's image tower), plain
    vlkd_config.json                    shapes, layout, mask type, answers, what was stripped, provenance
    README.md                           the exact recipe and a self-contained PyTorch snippet

The encoder is the cross-encoder's single-stream BERT (`vl.encoder`) or the dual encoder's TEXT tower; the dual
encoder's image tower (a BERT layer stack over [IMG] + region tokens, with no token embeddings, so not a BertModel)
goes into `vlkd_heads.safetensors` with the projections. The config names a standard attention implementation
(`eager`; vlkd's own `vlkd_eager` only differs in returning pre-dropout maps), so a process without vlkd loads it.
The pooler of the HF model (vlkd encoders have none) holds the ITM head's pooler where the task has one (it is the
same dense + tanh on [CLS]; likewise an imported Oscar VQA head's pooler), else zeros, so `from_pretrained`
initialises nothing at random.

`--to torchscript|onnx` traces the inference graph of the task (`vlkd_cli.export.graph`).

Distillation-only parts (the token-NCE projection and queue, anything of the teacher) and training state
(optimizer, RNG) are never exported; every such tensor found in the weights or in the run's checkpoints is listed
in `vlkd_config.json["stripped"]`. `--checkpoint` exports a training checkpoint (`best`, `latest`, `step-N` or a
path) instead of the final `model.safetensors`.

The layout of the weights follows Hugging Face's `BertModel` (`transformers/models/bert/modeling_bert.py`), whose
state-dict names our encoder already uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vlkd_cli.artifacts.atomic import atomic_dir
from vlkd_cli.errors import UsageError
from vlkd_cli.export.hf import write_hf_export
from vlkd_cli.export.source import Stripped, load_export_source

FORMATS: tuple[str, ...] = ("hf", "torchscript", "onnx")


@dataclass(frozen=True)
class ExportConfig:
    """What `vlkd export` does.

    Attributes:
        model: A vlkd model directory (finetune / distill / adapt-teacher output).
        to: hf | torchscript | onnx.
        out: The output directory (replaced atomically).
        checkpoint: None (the final `model.safetensors`), "best", "latest", "step-NNNNNNNN", a step number, or a
            path to a checkpoint directory / `.safetensors` file.
        batch_size: Example batch size the graph is traced at (torchscript / onnx).
    """

    model: Path
    to: str
    out: Path
    checkpoint: str | None = None
    batch_size: int = 1


@dataclass
class ExportResult:
    out: Path
    to: str
    task: str
    arch: str
    files: list[str]
    stripped: list[Stripped]
    checks: dict[str, float | None]



def run(cfg: ExportConfig) -> ExportResult:
    """Export a model directory; the output directory appears complete or not at all.

    Raises:
        UsageError: Unknown format, onnx without the `onnx` package, a bad batch size, no such checkpoint.
        InputError: The model directory is not a loadable vlkd model.
    """
    if cfg.to not in FORMATS:
        raise UsageError(f"--to must be one of {', '.join(FORMATS)}, got {cfg.to!r}")
    if cfg.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    if cfg.to == "onnx":
        from vlkd_cli.export.graph import require_onnx

        require_onnx()
    if Path(cfg.out).resolve() == Path(cfg.model).resolve():
        raise UsageError("--out must not be the model directory itself", cfg.out)
    source = load_export_source(cfg.model, cfg.checkpoint)
    checks: dict[str, float | None] = {}
    with torch.no_grad(), atomic_dir(Path(cfg.out)) as tmp:
        if cfg.to == "hf":
            files, _ = write_hf_export(source, tmp)
        else:
            from vlkd_cli.export.graph import write_graph_export

            files, checks = write_graph_export(source, tmp, fmt=cfg.to, batch_size=cfg.batch_size)
    return ExportResult(Path(cfg.out), cfg.to, source.config["task"], source.config.get("arch", "cross"), files,
                        source.stripped, checks)  # fmt: skip
