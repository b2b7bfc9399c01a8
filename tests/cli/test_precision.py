"""`--precision fp32|bf16|int8` on eval-caption, eval-vqa, eval-retrieval and benchmark-latency: every value runs
and is recorded; a bad value is a usage error answered before torch is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_refused, invoke
from vlkd_cli.artifacts.header import read_header


@pytest.fixture
def models(task_models) -> dict[str, Path]:
    return task_models  # one set of tiny models for every evaluation test (tests/conftest.py)


def _eval_args(command: str, models, demo_data, demo_regions) -> list:
    common = ["--regions", demo_regions, "--device", "cpu"]
    if command == "eval-caption":
        return [command, "--model", models["caption"], *common, "--annotations", demo_data / "karpathy.json",
                "--max-length", 4, "--no-meteor"]  # fmt: skip
    if command == "eval-vqa":
        return [command, "--model", models["vqa"], *common, "--questions", demo_data / "questions.json",
                "--annotations", demo_data / "annotations.json"]  # fmt: skip
    return [command, "--model", models["dual"], *common, "--annotations", demo_data / "karpathy.json"]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("command", ["eval-caption", "eval-vqa", "eval-retrieval"])
def test_eval_commands_accept_each_precision(command, precision, models, demo_data, demo_regions, tmp_path):
    out = tmp_path / "eval"
    result = invoke([*_eval_args(command, models, demo_data, demo_regions), "--precision", precision, "--out", out])
    assert result.exit_code == 0, result.output
    assert precision in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics  # official keys only: the precision is recorded with the config
    config = json.loads(read_header(out / "scores.safetensors").get("vlkd.config"))
    assert config["precision"] == precision


def test_int8_retrieval_recall_close_to_fp32(models, demo_data, demo_regions, tmp_path):
    recall = {}
    for precision in ("fp32", "int8"):
        out = tmp_path / precision
        args = _eval_args("eval-retrieval", models, demo_data, demo_regions)
        assert invoke([*args, "--precision", precision, "--out", out]).exit_code == 0
        recall[precision] = json.loads((out / "metrics.json").read_text())["r_mean"]
    assert abs(recall["int8"] - recall["fp32"]) <= 10.0  # percent; a 2-step tiny model on 4 test images


def test_benchmark_latency_int8(demo_data, demo_proposals, models, tmp_path):
    out = tmp_path / "latency"
    result = invoke(["benchmark-latency", "--model", models["caption"], "--images", demo_data / "images",
                     "--proposals", demo_proposals, "--batch-sizes", "1", "--warmup", 0, "--iters", 1,
                     "--decode-length", 2, "--device", "cpu", "--precision", "int8", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads((out / "latency.json").read_text())
    assert document["precision"] == "int8" and "quantised" in document["protocol"]["precision"]
    (info,) = document["models"]
    assert info["precision"] == "int8" and info["parameters"]["transformer"] > 0  # counted before quantisation
    assert read_header(out / "latency.safetensors").get("vlkd.precision") == "int8"


@pytest.mark.parametrize("command", ["eval-caption", "eval-vqa", "eval-retrieval", "benchmark-latency"])
def test_bad_precision_is_a_usage_error(command, models, demo_data, demo_regions, tmp_path):
    if command == "benchmark-latency":
        args = [command, "--model", models["caption"], "--images", demo_data / "images"]
    else:
        args = _eval_args(command, models, demo_data, demo_regions)
    assert_refused(invoke([*args, "--precision", "fp16", "--out", tmp_path / "out"]), 2, "--precision",
                   "fp32, bf16, int8")  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_bad_precision_answers_without_importing_torch(tmp_path):
    (tmp_path / "results.json").write_text("[]")
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from vlkd_cli.cli import app\n"
        f"r = CliRunner().invoke(app, ['eval-caption', '--predictions', {str(tmp_path / 'results.json')!r}, '--out', 'o', "
        "'--precision', 'fp8'])\n"
        "assert r.exit_code == 2 and '--precision' in r.output, r.output\n"
        "assert 'torch' not in sys.modules, 'an argument error imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_cli_knows_the_library_precisions():
    from vlkd_cli.cli._options import PRECISIONS as CLI_PRECISIONS
    from vlkd_cli.models.precision import PRECISIONS

    assert CLI_PRECISIONS == PRECISIONS
