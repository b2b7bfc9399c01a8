"""The finetune task: what `vlkd finetune` and `vlkd adapt-teacher` hand the training loop (`train.loop.TrainTask`),
the model it trains (a preset, a local Hugging Face BERT-family directory, or a vlkd model directory), and the model
directory it writes. `cfg` below is the command's `FinetuneConfig` (any object with its fields).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vlkd_cli.artifacts.atomic import atomic_dir, write_text_atomic
from vlkd_cli.artifacts.io import input_record, save_artifact
from vlkd_cli.artifacts.model_dir import CONFIG_NAME, WEIGHTS_NAME, load_model_dir
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.artifacts.schema import SCHEMA_VERSIONS
from vlkd_cli.data.task_data import TaskData
from vlkd_cli.data.vl_datasets import SampleList, TrainBatch, VLCollator
from vlkd_cli.distributed import barrier, is_main
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models.factory import create_vl_model, load_matching_weights, model_from_config
from vlkd_cli.models.hub import HUB_HINT, local_model_dir, source_name
from vlkd_cli.models.presets import list_presets
from vlkd_cli.models.teacher_init import parse_layers, start_from_teacher
from vlkd_cli.models.tokenizer import load_tokenizer, save_tokenizer, train_wordpiece_tokenizer
from vlkd_cli.tasks import validation
from vlkd_cli.tasks.negative_miner import NegativeMiner
from vlkd_cli.train.checkpoint import CHECKPOINTS

REGION_OPTIONS = ("region_layer_norm", "region_layer_norm_eps")  # carried over when the task changes


class TaskModule(nn.Module):
    """What the loop trains: `forward(TrainBatch)` → the model's loss dict."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        return self.model.forward_loss(batch.vl, batch.targets)


class FinetuneTask:
    """The `TrainTask` of finetune / adapt-teacher (see `train.loop.TrainTask`)."""

    saved_module = "model"  # the submodule of `module` that becomes the output model directory

    def __init__(self, cfg, model: nn.Module, tokenizer, data: TaskData, collator: VLCollator,
                 lineage: dict[str, Any], miner: NegativeMiner | None = None) -> None:  # fmt: skip
        self.cfg, self.tokenizer, self.data, self.collator, self.lineage = cfg, tokenizer, data, collator, lineage
        self.module = TaskModule(model)
        self.miner = miner  # a dual encoder choosing the cross-encoder's ranking negatives (ALBEF)
        self.metric_name = validation.METRICS[cfg.task]

    def train_dataset(self) -> SampleList:
        return SampleList(self.data.train)

    def collate(self, samples) -> TrainBatch:
        batch = self.collator(samples)
        if self.miner is not None:
            batch.targets["negative_weights"] = self.miner.weights(samples)  # (B, B)
        return batch

    def after_step(self) -> None:
        pass

    def evaluate(self, module: nn.Module) -> dict[str, float]:
        model, data, size = module.model, self.data, self.cfg.eval_batch_size
        if not data.val:
            return {}
        if self.cfg.task == "caption":
            return validation.caption_metrics(model, self.collator, data.val, data.val_references, batch_size=size,
                                              tokenizer=self.tokenizer)  # fmt: skip
        if self.cfg.task == "vqa":
            return validation.vqa_metrics(model, self.collator, data.val, data.val_question_ids, data.val_references,
                                          data.answers, batch_size=size)  # fmt: skip
        if self.cfg.task == "retrieval":
            return validation.retrieval_metrics(model, self.collator, data.val, batch_size=size)
        return validation.pretrain_metrics(model, self.collator, data.val, batch_size=size)

    def save_model(self, out: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str],
                   summary: dict[str, Any]) -> None:  # fmt: skip
        prefix = f"{self.saved_module}."  # the trained model's weights within the module's state dict
        weights = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        config = {**getattr(self.module, self.saved_module).config, **self.lineage, "vlkd_kind": "model",
                  "vlkd_schema_version": SCHEMA_VERSIONS["model"], "training": summary}  # fmt: skip
        metadata = {**metadata, "vlkd.inputs": json.dumps(self.lineage["inputs"])}
        write_model_dir(out, config, weights, metadata, self.tokenizer)


def write_model_dir(out: Path, config: dict, weights: dict[str, torch.Tensor], metadata: dict[str, str], tokenizer) -> None:
    """Tokenizer files and config.json, then model.safetensors last (its presence marks a complete directory);
    each file is replaced atomically, so checkpoints living in `out` are untouched."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".tokenizer-") as tmp:
        save_tokenizer(tokenizer, Path(tmp))
        for name in os.listdir(tmp):
            os.replace(Path(tmp) / name, out / name)
    write_text_atomic(out / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
    save_artifact(out / WEIGHTS_NAME, weights, metadata)


def is_model_dir(path: str) -> bool:
    return (Path(path) / CONFIG_NAME).is_file() and (Path(path) / WEIGHTS_NAME).is_file()


def run_tokenizer(cfg, regions: Regions, data: TaskData):
    """A WordPiece tokenizer trained on the training text, once per run: rank 0 trains and saves it in the run
    directory, the other processes and a resumed run load that copy (training is not bit-reproducible)."""
    saved = Path(cfg.out) / CHECKPOINTS / "tokenizer"
    if not (cfg.train.resume and saved.is_dir()):
        if is_main():
            tags = [c.get("name", "") for c in regions.categories]
            tokenizer = train_wordpiece_tokenizer(data.texts + tags, vocab_size=cfg.vocab_size)
            with atomic_dir(saved) as tmp:
                save_tokenizer(tokenizer, tmp)
        barrier()
    return load_tokenizer(saved)


def build_model(cfg, regions: Regions, data: TaskData):
    """(model, tokenizer, source description) from a preset, an HF directory or a vlkd model directory."""
    feature_dim = regions.student_dim if cfg.features == "student" else regions.teacher_dim
    common = dict(task=cfg.task, arch=cfg.arch, region_feature_dim=feature_dim, answers=data.answers,
                  max_text_len=cfg.max_text_len, max_tag_len=cfg.max_tag_len, max_regions=cfg.max_regions,
                  label_smoothing=cfg.label_smoothing, itm_negatives=cfg.itm_negatives)  # fmt: skip
    if cfg.model in list_presets():
        tokenizer = run_tokenizer(cfg, regions, data)
        return create_vl_model(preset=cfg.model, tokenizer=tokenizer, **common), tokenizer, f"preset:{cfg.model}"
    path = local_model_dir(cfg.model)
    if path is None:
        raise UsageError(f"--model must be a preset ({', '.join(list_presets())}), a model directory or {HUB_HINT}",
                         cfg.model)  # fmt: skip
    vlkd_dir = is_model_dir(str(path)) and "vlkd_kind" in json.loads((path / CONFIG_NAME).read_text())
    if cfg.init_from_teacher:
        if not vlkd_dir:
            raise UsageError("--init-from-teacher takes the teacher as --model: a vlkd model directory", path)
        return _from_teacher_layers(cfg, path, common)
    if not vlkd_dir:
        model = create_vl_model(hf_dir=path, hf_name=source_name(cfg.model), **common)
        return model, load_tokenizer(path), f"hf:{cfg.model}"
    return _from_vlkd_dir(cfg, path, feature_dim, common)


def _from_teacher_layers(cfg, path: Path, common: dict):
    """A model of the teacher's width with the layers `--init-from-teacher` names, started from them (its own
    task and features: heads and a region projection that do not fit stay as initialised)."""
    config, weights, _ = load_model_dir(path, "model")
    teacher = model_from_config(config)
    teacher.load_state_dict(weights)
    layers = parse_layers(cfg.init_from_teacher, int(config["encoder"]["num_hidden_layers"]))
    tokenizer = load_tokenizer(path)
    common = {**common, **{k: config["layout"][k] for k in ("max_text_len", "max_tag_len", "max_regions")}}
    encoder = {**config["encoder"], "num_hidden_layers": len(layers)}
    model = create_vl_model(encoder_config=encoder, tokenizer=tokenizer, **common)
    start_from_teacher(model, teacher, cfg.init_from_teacher, str(path))
    return model, tokenizer, f"model:{input_record(path)['sha256']} layers {','.join(map(str, layers))}"


def _from_vlkd_dir(cfg, path: Path, feature_dim: int, common: dict):
    config, weights, _ = load_model_dir(path, "model")
    if int(config.get("region_feature_dim", -1)) != feature_dim:
        raise InputError(
            f"model takes {config.get('region_feature_dim')}-d region features, the {cfg.features} features of "
            f"the regions are {feature_dim}-d (another backbone?)",
            path,
        )
    tokenizer = load_tokenizer(path)
    same_answers = cfg.task != "vqa" or config.get("answers") == common["answers"]
    if config.get("task") == cfg.task and config.get("arch", "cross") == cfg.arch and same_answers:
        model = model_from_config(config)
        model.load_state_dict(weights, strict=True)
        return model, tokenizer, f"model:{input_record(path)['sha256']}"
    common = {**common, "max_text_len": config["layout"]["max_text_len"],
              "max_tag_len": config["layout"]["max_tag_len"], "max_regions": config["layout"]["max_regions"]}  # fmt: skip
    model = create_vl_model(encoder_config=config["encoder"], tokenizer=tokenizer, **common)
    carried = {k: config[k] for k in REGION_OPTIONS if k in config}  # e.g. an imported Oscar model: no region LN
    if carried:
        model = model_from_config({**model.config, **carried})
    copied = load_matching_weights(model, weights)
    if not copied:
        raise InputError("no weight of this model fits the new task's model", path)
    return model, tokenizer, f"model:{input_record(path)['sha256']}"


