"""`distill` (DistillVLM) end to end on tiny models: alignment checks, every loss term, the frozen teacher."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.cli.test_finetune import caption_teacher  # noqa: F401  (the module-scoped fixture)
from tests.conftest import TINY_TEACHER_BACKBONE, invoke


def _distill(demo_data, regions, teacher, out, *extra):
    return invoke(["distill", "--teacher", teacher, "--student", "tiny", "--regions", regions, "--task", "caption",
                   "--annotations", demo_data / "karpathy.json", "--split", "train", "--batch-size", 8,
                   "--device", "cpu", "--out", out, "--queue-size", 64, *extra])  # fmt: skip


def test_distill_writes_every_loss_part_and_a_clean_student(caption_teacher, demo_data, demo_regions, tmp_path):  # noqa: F811
    before = load_file(caption_teacher / "model.safetensors")
    out = tmp_path / "student"
    result = _distill(demo_data, demo_regions, caption_teacher, out, "--max-steps", 3, "--log-every", 1,
                      "--save-every", 3, "--val-split", "val", "--eval-every", 3)  # fmt: skip
    assert result.exit_code == 0, result.output
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    for part in ("task_loss", "attention_mse_loss", "token_nce_loss", "logit_kd_loss"):
        assert all(part in e for e in log if "loss" in e), part
    config = json.loads((out / "config.json").read_text())
    assert config["features"] == "student" and config["distillation"]["aligned"] is True
    assert config["tokenizer_fingerprint"] == json.loads((caption_teacher / "config.json").read_text())["tokenizer_fingerprint"]
    weights = load_file(out / "model.safetensors")
    assert not any(k.startswith(("nce.", "student.")) for k in weights)  # the student alone
    checkpoint = load_file(out / "checkpoints" / "step-00000003" / "checkpoint.safetensors")
    assert "model.nce.queue.queue" in checkpoint and "model.nce.projection.weight" in checkpoint  # resumable
    after = load_file(caption_teacher / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)  # the teacher is never trained


def test_unadapted_teacher_is_refused_unless_the_ablation_is_asked_for(caption_teacher, demo_data, demo_regions,  # noqa: F811
                                                                       tiny_detector, tmp_path):  # fmt: skip
    other = tmp_path / "detected.safetensors"
    result = invoke(["extract-regions", "--images", demo_data / "images", "--detector", tiny_detector,
                     "--teacher-backbone", TINY_TEACHER_BACKBONE, "--score-threshold", 0.0, "--max-regions", 5,
                     "--out", other])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = _distill(demo_data, other, caption_teacher, tmp_path / "s", "--max-steps", 1)
    assert result.exit_code == 3 and "not adapted to these regions" in result.stderr, result.output
    assert not (tmp_path / "s").exists()
    # The paper's no-adaptation ablation: the teacher reads its own regions, tokens matched by position.
    # (Here the student reads the detector's regions; the teacher was trained on demo_regions.)
    result = _distill(demo_data, other, caption_teacher, tmp_path / "s", "--max-steps", 1,
                      "--teacher-regions", demo_regions, "--allow-misaligned")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s" / "config.json").read_text())["distillation"]["aligned"] is False


def test_tokenizer_mismatch_is_refused(caption_teacher, demo_data, demo_regions, tmp_path):  # noqa: F811
    other = tmp_path / "other-student"
    result = invoke(["finetune", "--task", "caption", "--model", "tiny", "--regions", demo_regions,
                     "--annotations", demo_data / "karpathy.json", "--split", "val", "--max-steps", 1,
                     "--batch-size", 8, "--out", other])  # fmt: skip  (another vocabulary: val captions only)
    assert result.exit_code == 0, result.output
    result = invoke(["distill", "--teacher", caption_teacher, "--student", other, "--regions", demo_regions,
                     "--task", "caption", "--annotations", demo_data / "karpathy.json", "--out", tmp_path / "s"])  # fmt: skip
    assert result.exit_code == 3 and "tokenizers differ" in result.stderr, result.output


@pytest.mark.parametrize("spec", ["attention_mse", "bogus=1", "attention_mse=x"])
def test_bad_loss_flags(caption_teacher, demo_data, demo_regions, tmp_path, spec):  # noqa: F811
    result = _distill(demo_data, demo_regions, caption_teacher, tmp_path / "s", "--loss", spec)
    assert result.exit_code == 2 and "--loss" in result.stderr


def test_distillvlm_refuses_retrieval(caption_teacher, demo_data, demo_regions, tmp_path):  # noqa: F811
    result = invoke(["distill", "--teacher", caption_teacher, "--student", "tiny", "--regions", demo_regions,
                     "--task", "retrieval", "--annotations", demo_data / "karpathy.json", "--out", tmp_path / "s"])  # fmt: skip
    assert result.exit_code == 2 and "caption, vqa or pretrain" in result.stderr


@pytest.mark.parametrize("task", ["vqa", "pretrain"])
def test_distill_vqa_and_pretrain(demo_data, demo_regions, tmp_path, task):
    """Every DistillVLM task: a teacher on the teacher features of these regions, then a distilled student."""
    if task == "vqa":
        data = ["--annotations", demo_data / "annotations.json", "--questions", demo_data / "questions.json",
                "--split-file", demo_data / "karpathy.json", "--split", "train", "--min-answer-count", 1]  # fmt: skip
    else:
        data = ["--annotations", demo_data / "karpathy.json", "--split", "train"]
    common = [*data, "--max-steps", 2, "--batch-size", 8, "--device", "cpu", "--log-every", 1]
    teacher = tmp_path / "teacher"
    result = invoke(["finetune", "--task", task, "--model", "tiny", "--regions", demo_regions, "--features", "teacher",
                     *common, "--out", teacher])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = tmp_path / "student"
    result = invoke(["distill", "--teacher", teacher, "--student", "tiny", "--regions", demo_regions, "--task", task,
                     *common, "--queue-size", 32, "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(e["logit_kd_loss"] > 0 and e["attention_mse_loss"] >= 0 for e in log if "loss" in e)
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == task and config.get("answers") == json.loads((teacher / "config.json").read_text()).get("answers")
