"""`finetune` and `adapt-teacher` end to end on tiny models: every task and arch, lineage, resume after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TINY_BACKBONE, TINY_TEACHER_BACKBONE, invoke
from vlkd_cli.artifacts.regions import Regions

ROOT = Path(__file__).resolve().parents[2]


def _finetune(demo_data, regions, out, *extra, task="caption", features="teacher", model="tiny"):
    annotations = demo_data / ("annotations.json" if task == "vqa" else "karpathy.json")
    args = ["finetune", "--task", task, "--model", model, "--regions", regions, "--features", features,
            "--annotations", annotations, "--out", out, "--batch-size", 8, "--device", "cpu", "--lr", 1e-3, *extra]  # fmt: skip
    if task == "vqa":
        args += ["--questions", demo_data / "questions.json", "--split-file", demo_data / "karpathy.json",
                 "--min-answer-count", 1]  # fmt: skip
    return invoke(args)


@pytest.fixture(scope="module")
def caption_teacher(demo_data, demo_regions, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "teacher"
    result = _finetune(demo_data, demo_regions, out, "--split", "train", "--val-split", "val", "--eval-every", 3,
                       "--max-steps", 6, "--save-every", 3)  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_caption_model_dir_is_self_contained(caption_teacher, demo_regions):
    files = {p.name for p in caption_teacher.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "log.jsonl", "checkpoints"} <= files
    config = json.loads((caption_teacher / "config.json").read_text())
    regions = Regions(demo_regions)
    assert config["vlkd_kind"] == "model" and config["task"] == "caption"
    assert config["regions_boxes_sha256"] == regions.boxes_sha256
    assert config["training"]["metric"] == "CIDEr" and config["training"]["best_step"] in (3, 6)
    assert config["features"] == "teacher" and config["feature_backbone"] == TINY_TEACHER_BACKBONE
    assert config["feature_backbone_sha256"] == regions.metadata["vlkd.teacher_backbone_sha256"]
    shown = invoke(["inspect", caption_teacher])
    assert shown.exit_code == 0 and '"task": "caption"' in shown.output and "input [regions]" in shown.output
    log = [json.loads(line) for line in (caption_teacher / "log.jsonl").read_text().splitlines()]
    assert any("val/CIDEr" in entry for entry in log) and any("caption_loss" in entry for entry in log)
    # Loads without the run that made it: rebuild from config.json + weights and caption an image.
    from vlkd_cli.data.vl_datasets import VLCollator
    from vlkd_cli.models.factory import model_from_config
    from vlkd_cli.models.tokenizer import load_tokenizer

    model = model_from_config(config)
    model.load_state_dict(load_file(caption_teacher / "model.safetensors"))
    tokenizer = load_tokenizer(caption_teacher)
    collator = VLCollator(regions, tokenizer, features="teacher", batch_kwargs=model.batch_kwargs(), use_tags=True)
    result = model.generate(collator.images_only([0, 1]), max_length=8, tokenizer=tokenizer)
    assert len(result.texts) == 2


@pytest.mark.parametrize(("task", "extra"), [
    ("vqa", ["--split", "train", "--val-split", "val", "--eval-every", 2]),
    ("retrieval", ["--split", "train", "--val-split", "val", "--eval-every", 2]),
    ("retrieval", ["--arch", "dual", "--split", "train", "--val-split", "val", "--eval-every", 2]),
    ("pretrain", ["--val-split", "val", "--eval-every", 2]),
])  # fmt: skip
def test_every_task_trains_and_validates(demo_data, demo_regions, tmp_path, task, extra):
    result = _finetune(demo_data, demo_regions, tmp_path / "m", *extra, "--max-steps", 2, task=task, features="student")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["best_metric"] is not None and summary["val_samples"] > 0
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_pretrain_mlm_loss_falls(demo_data, demo_regions, tmp_path):
    result = _finetune(demo_data, demo_regions, tmp_path / "m", "--max-steps", 40, "--log-every", 1,
                       "--lr", 3e-3, task="pretrain", features="student")  # fmt: skip
    assert result.exit_code == 0, result.output
    losses = [json.loads(line)["mlm_loss"] for line in (tmp_path / "m" / "log.jsonl").read_text().splitlines()]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_adapt_teacher_records_the_alignment_key(caption_teacher, demo_data, demo_regions, tmp_path):
    out = tmp_path / "adapted"
    result = invoke(["adapt-teacher", "--teacher", caption_teacher, "--regions", demo_regions, "--task", "caption",
                     "--annotations", demo_data / "karpathy.json", "--split", "train", "--max-steps", 2,
                     "--batch-size", 8, "--device", "cpu", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["adapted_to_boxes_sha256"] == Regions(demo_regions).boxes_sha256
    assert config["features"] == "teacher"


def test_adapt_teacher_refuses_features_of_another_backbone(caption_teacher, demo_data, demo_proposals, tmp_path):
    other = tmp_path / "other.safetensors"
    result = invoke(["extract-regions", "--images", demo_data / "images", "--annotations", demo_data / "instances.json",
                     "--proposals", demo_proposals, "--student-backbone", TINY_BACKBONE,
                     "--teacher-backbone", TINY_TEACHER_BACKBONE, "--seed", 5, "--image-size", 64, "--out", other])  # fmt: skip
    assert result.exit_code == 0, result.output  # same architecture, other (random) weights
    result = invoke(["adapt-teacher", "--teacher", caption_teacher, "--regions", other, "--task", "caption",
                     "--annotations", demo_data / "karpathy.json", "--out", tmp_path / "a"])  # fmt: skip
    assert result.exit_code == 3 and "teacher features come from" in result.stderr, result.output
    assert not (tmp_path / "a").exists()


def test_run_directory_rules(caption_teacher, demo_data, demo_regions, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(caption_teacher, out)
    result = _finetune(demo_data, demo_regions, out, "--max-steps", 2)
    assert result.exit_code == 2 and "--resume" in result.stderr
    result = _finetune(demo_data, demo_regions, tmp_path / "fresh", "--max-steps", 2, "--resume")
    assert result.exit_code == 3 and "no checkpoint" in result.stderr


def test_kill_during_finetune_then_resume_is_bit_identical(demo_data, demo_regions, tmp_path):
    args = ["-m", "vlkd_cli", "finetune", "--task", "caption", "--model", "tiny", "--regions", str(demo_regions),
            "--features", "student", "--annotations", str(demo_data / "karpathy.json"), "--batch-size", "8",
            "--device", "cpu", "--max-steps", "24", "--save-every", "4", "--lr", "1e-3"]  # fmt: skip
    env = {**os.environ, "VLKD_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "whole")], check=True, env=env, capture_output=True)
    victim = subprocess.Popen([sys.executable, *args, "--out", str(tmp_path / "killed")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while not (tmp_path / "killed" / "checkpoints" / "step-00000008").is_dir():
        assert victim.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "killed"), "--resume"], check=True, env=env,
                   capture_output=True)  # fmt: skip
    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_finetune_under_torchrun_and_bf16(demo_data, demo_regions, tmp_path):
    """Two CPU processes (gloo) train one model; rank 0 alone writes it. bf16 autocast runs on CPU too."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "VLKD_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               "-m", "vlkd_cli", "finetune", "--task", "caption", "--model", "tiny", "--regions", str(demo_regions),
               "--annotations", str(demo_data / "karpathy.json"), "--split", "train", "--val-split", "val",
               "--eval-every", "2", "--max-steps", "2", "--log-every", "1", "--batch-size", "8", "--bf16", "--device", "cpu",
               "--out", str(tmp_path / "m")]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["vlkd_kind"] == "model"
    log = [json.loads(line) for line in (tmp_path / "m" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2]  # one writer: no line twice
