"""`vlkd finetune` and `vlkd adapt-teacher`: train a VL model on a regions artifact with the one training loop.

`--model` is a preset (random init; a WordPiece tokenizer is trained on the training text), a local Hugging Face
BERT-family directory (its weights and tokenizer), or a vlkd model directory (its weights: same task continues,
another task takes the matching encoder weights). The output model directory records the regions' alignment
key, the feature source and its backbone, and the data lineage.

`adapt-teacher` (DistillVLM's teacher adaptation) is this stage with a vlkd teacher directory, the STUDENT's
regions and the TEACHER's features; it writes `adapted_to_boxes_sha256` into the output `config.json`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlkd_cli.artifacts.feature_checks import check_reads_features
from vlkd_cli.artifacts.io import input_record
from vlkd_cli.artifacts.model_dir import read_model_config
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.task_config import DataConfig
from vlkd_cli.data.task_data import TaskData, load_task_data
from vlkd_cli.data.vl_datasets import Sample, VLCollator
from vlkd_cli.distributed import init_distributed
from vlkd_cli.errors import UsageError
from vlkd_cli.models.tokenizer import tokenizer_fingerprint
from vlkd_cli.runtime import resolve_device, seed_everything
from vlkd_cli.stages.training_configs import FinetuneConfig
from vlkd_cli.tasks.finetune import FinetuneTask, build_model, is_model_dir
from vlkd_cli.tasks.negative_miner import NegativeMiner
from vlkd_cli.train.loop import prepare_out_dir, train

if TYPE_CHECKING:
    import torch


def _lineage(cfg: FinetuneConfig, regions: Regions, data: TaskData, source: str) -> dict[str, Any]:
    """The model's lineage; its alignment key is that of the regions sets holding the training images (what
    adaptation records and distillation checks: validation images need no adaptation)."""
    side = cfg.features
    key = regions.key_for(s.image_index for s in data.train)
    lineage = {
        "features": side,
        "feature_backbone": regions.metadata.get(f"vlkd.{side}_backbone"),
        "feature_backbone_sha256": regions.metadata.get(f"vlkd.{side}_backbone_sha256"),
        "regions_boxes_sha256": key,
        "initialized_from": source,
        "use_tags": cfg.use_tags,
        "options": cfg.options,
        "inputs": [input_record(p, "regions") for p in regions.paths]
        + [input_record(p, "annotations") for p in _data_files(cfg.data)],
    }
    if cfg.adapt:
        lineage["adapted_to_boxes_sha256"] = key
    return lineage


def _data_files(data: DataConfig) -> list[Path]:
    files = [data.annotations, data.questions, data.split_file, data.val_annotations, data.val_questions]
    return [f for f in files if f is not None]


def check_adaptation_inputs(cfg: FinetuneConfig, regions: Regions) -> dict[str, Any]:
    """adapt-teacher needs a vlkd teacher whose features come from the regions' teacher backbone."""
    if not is_model_dir(cfg.model):
        raise UsageError("--teacher must be a vlkd model directory (from `vlkd finetune`)", cfg.model)
    config = read_model_config(Path(cfg.model), "model")  # the weights are loaded once, by build_model
    check_reads_features(config, regions, "teacher", Path(cfg.model))
    return config


def check_miner_options(cfg: FinetuneConfig) -> None:
    """--itm-miner draws the ranking negatives of a retrieval cross-encoder (--itm-negatives K > 0)."""
    if cfg.itm_miner is not None and (cfg.task != "retrieval" or cfg.arch != "cross" or cfg.itm_negatives <= 0):
        raise UsageError("--itm-miner draws the ranking negatives of a cross-encoder: it needs --task retrieval, "
                         "--arch cross and --itm-negatives K > 0", cfg.itm_miner)  # fmt: skip
    if cfg.itm_miner_regions is not None and cfg.itm_miner is None:
        raise UsageError("--itm-miner-regions names the regions of an --itm-miner: give the miner too")


def _miner(cfg: FinetuneConfig, regions: Regions, train: list[Sample], device: torch.device) -> NegativeMiner | None:
    """The --itm-miner on its own regions (--itm-miner-regions) or the model's; every training image checked."""
    if cfg.itm_miner is None:
        return None
    own = Regions(cfg.itm_miner_regions) if cfg.itm_miner_regions is not None else None
    miner = NegativeMiner(cfg.itm_miner, own or regions, device, own_regions=own is not None)
    images = sorted({own.index_of(s.image_id) for s in train}) if own is not None else (s.image_index for s in train)
    (own or regions).check_finite(miner.loaded.side, images)
    return miner


def run(cfg: FinetuneConfig, *, command: str = "finetune") -> dict[str, Any]:
    """Train and write the model directory; return the training summary."""
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.device)
    init_distributed(device)
    check_miner_options(cfg)
    regions = Regions(cfg.regions)
    if cfg.adapt:
        teacher_config = check_adaptation_inputs(cfg, regions)
        cfg = replace(cfg, arch=teacher_config.get("arch", "cross"))
    data = load_task_data(cfg.data, regions, source=str(cfg.data.annotations))
    regions.check_finite(cfg.features, (s.image_index for s in data.train + data.val))
    miner = _miner(cfg, regions, data.train, device)
    prepare_out_dir(cfg.out, cfg.train)  # after every input check: a refused run leaves nothing behind
    model, tokenizer, source = build_model(cfg, regions, data)
    collator = VLCollator(regions, tokenizer, features=cfg.features, batch_kwargs=model.batch_kwargs(),
                          use_tags=cfg.use_tags, num_answers=len(data.answers) if data.answers else None)  # fmt: skip
    lineage = _lineage(cfg, regions, data, source)
    if miner is not None:
        lineage["itm_miner"] = miner.loaded.record
    task = FinetuneTask(cfg, model, tokenizer, data, collator, lineage, miner)
    run_config = {k: v for k, v in asdict(cfg).items() if k != "train"}
    result = train(task, cfg.train, out=cfg.out, device=device, command=command,
                   run_config=json.loads(json.dumps(run_config, default=str)))  # fmt: skip
    return {"steps": result.steps, "best_metric": result.best_metric, "best_step": result.best_step,
            "metric": task.metric_name, "train_samples": len(data.train), "val_samples": len(data.val),
            "tokenizer": tokenizer_fingerprint(tokenizer)[:16]}  # fmt: skip
