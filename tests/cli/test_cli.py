"""The CLI end to end: help without torch, the foundation pipeline, and the contract's exit codes on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import TINY_BACKBONE, TINY_TEACHER_BACKBONE, assert_refused, invoke
from vlkd_cli.artifacts.regions import Regions


def test_help_lists_commands_without_importing_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from vlkd_cli.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "for c in ('make-demo-data', 'train-detector', 'extract-regions', 'inspect'): assert c in r.output, c\n"
        "r = CliRunner().invoke(app, ['extract-regions', '--help'])\n"
        "assert 'Example' in r.output\n"
        "r = CliRunner().invoke(app, ['extract-regions', '--bogus'])\n"
        "assert r.exit_code == 2\n"
        "assert 'torch' not in sys.modules, 'help imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_python_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "vlkd_cli", "--help"], capture_output=True, text=True, check=True)
    assert "extract-regions" in out.stdout


def _extract(demo_data, out, *extra):
    return invoke([
        "extract-regions", "--images", demo_data / "images", "--annotations", demo_data / "instances.json",
        "--student-backbone", TINY_BACKBONE, "--teacher-backbone", TINY_TEACHER_BACKBONE, "--image-size", 64,
        "--device", "cpu", "--out", out, *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def regions_from_proposals(demo_regions):
    return demo_regions


def test_extract_regions_from_proposals(regions_from_proposals, demo_data):
    regions = Regions(regions_from_proposals)
    instances = json.loads((demo_data / "instances.json").read_text())
    assert regions.num_images == len(instances["images"])
    assert regions.num_regions == len(instances["annotations"])  # GT boxes are distinct: NMS keeps all
    assert regions.student_dim == 128 + 256 + 512  # resnet10t, strides 8/16/32
    assert regions.teacher_dim == 128 + 256 + 512
    for n in range(regions.num_images):
        image = regions.image(n)
        h, w = image.size
        assert (image.boxes[:, :2] >= 0).all() and (image.boxes[:, 2] <= w).all() and (image.boxes[:, 3] <= h).all()
    assert {c["name"] for c in regions.categories} >= {"circle", "square"}
    assert regions.metadata["vlkd.student_backbone"] == TINY_BACKBONE


def test_two_shards_equal_one_shard(regions_from_proposals, demo_data, demo_proposals, tmp_path):
    base = tmp_path / "regions.safetensors"
    for k in range(2):
        result = _extract(demo_data, base, "--proposals", demo_proposals, "--shard", f"{k}/2")
        assert result.exit_code == 0, result.output
    assert not base.exists() and (tmp_path / "regions-00001-of-00002.safetensors").is_file()
    one, two = Regions(regions_from_proposals), Regions(base)
    assert one.boxes_sha256 == two.boxes_sha256
    assert np.array_equal(one.image_ids, two.image_ids)
    for n in range(one.num_images):
        a, b = one.image(n), two.image(n)
        for field in ("boxes", "scores", "labels", "student_features", "teacher_features"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field


def test_inspect_prints_and_validates(regions_from_proposals, tmp_path):
    result = invoke(["inspect", regions_from_proposals])
    assert result.exit_code == 0, result.output
    assert "kind regions" in result.output and "student_features" in result.output
    as_json = json.loads(invoke(["inspect", regions_from_proposals, "--json"]).output)
    assert as_json[0]["kind"] == "regions" and as_json[0]["metadata"]["vlkd.boxes_sha256"]
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(regions_from_proposals.read_bytes()[:-100])
    result = invoke(["inspect", broken])
    assert result.exit_code == 3 and "truncated" in result.stderr and "Traceback" not in result.output


def test_train_detector_then_extract_with_detector(tiny_detector, demo_data, tmp_path):
    config = json.loads((tiny_detector / "config.json").read_text())
    assert config["vlkd_kind"] == "detector" and "val_AP50" in config["metrics"]
    out = tmp_path / "regions.safetensors"
    result = invoke([
        "extract-regions", "--images", demo_data / "images", "--detector", tiny_detector,
        "--teacher-backbone", TINY_TEACHER_BACKBONE, "--device", "cpu", "--score-threshold", 0.0,
        "--max-regions", 5, "--out", out,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    regions = Regions(out)
    assert regions.metadata["vlkd.student_backbone"] == TINY_BACKBONE
    assert regions.metadata["vlkd.student_backbone_sha256"] == config["backbone_sha256"]
    assert int(regions.metadata["vlkd.image_size"]) == 64  # the detector's input size
    assert 0 < regions.num_regions <= 5 * regions.num_images


# --------------------------------------------------------------------------------------------- bad inputs


@pytest.fixture()
def data_copy(demo_data, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(demo_data, target)
    return target


def test_corrupt_image_keeps_existing_output(data_copy, demo_proposals, regions_from_proposals, tmp_path):
    out = tmp_path / "regions.safetensors"
    shutil.copy(regions_from_proposals, out)
    before = out.read_bytes()
    victim = sorted((data_copy / "images").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:60])
    assert_refused(_extract(data_copy, out, "--proposals", demo_proposals), 3, victim.name)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "regions.safetensors"]  # no temp left
    result = _extract(data_copy, out, "--proposals", demo_proposals, "--skip-bad-images")
    assert result.exit_code == 0 and "skipped 1 unreadable" in result.stderr
    assert Regions(out).num_images == 23


def test_missing_image(data_copy, demo_proposals, tmp_path):
    victim = sorted((data_copy / "images").iterdir())[0]
    victim.unlink()
    assert_refused(_extract(data_copy, tmp_path / "r.safetensors", "--proposals", demo_proposals), 3, victim.name)
    assert not (tmp_path / "r.safetensors").exists()


def test_path_escaping_the_root(data_copy, demo_proposals, tmp_path):
    instances = json.loads((data_copy / "instances.json").read_text())
    instances["images"][0]["file_name"] = "../../etc/passwd"
    (data_copy / "instances.json").write_text(json.dumps(instances))
    assert_refused(_extract(data_copy, tmp_path / "r.safetensors", "--proposals", demo_proposals), 3, "escapes")


def test_missing_path_is_usage_error(demo_data, tmp_path):
    result = _extract(demo_data, tmp_path / "r.safetensors", "--proposals", tmp_path / "nope.json")
    assert result.exit_code == 2


def test_wrong_kind_and_newer_schema_detector(tiny_detector, demo_data, tmp_path):
    fake = tmp_path / "fake"
    shutil.copytree(tiny_detector, fake)
    config = json.loads((fake / "config.json").read_text())
    for key, value, needle in (("vlkd_kind", "model", "expected a vlkd 'detector'"),
                               ("vlkd_schema_version", 99, "newer than this vlkd reads")):  # fmt: skip
        (fake / "config.json").write_text(json.dumps({**config, key: value}))
        result = invoke(["extract-regions", "--images", demo_data / "images", "--detector", fake,
                         "--teacher-backbone", TINY_TEACHER_BACKBONE, "--out", tmp_path / "r.safetensors"])  # fmt: skip
        assert_refused(result, 3, needle)
    assert not (tmp_path / "r.safetensors").exists()


def test_truncated_and_lying_detector_weights(tiny_detector, demo_data, tmp_path):
    fake = tmp_path / "fake"
    shutil.copytree(tiny_detector, fake)
    weights = (fake / "model.safetensors").read_bytes()
    (fake / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    args = ["extract-regions", "--images", demo_data / "images", "--detector", fake,
            "--teacher-backbone", TINY_TEACHER_BACKBONE, "--out", tmp_path / "r.safetensors"]  # fmt: skip
    assert_refused(invoke(args), 3, "model.safetensors", "truncated")
    length = int.from_bytes(weights[:8], "little")
    lie = weights[: 8 + length].replace(b'"data_offsets":[0,', b'"data_offsets":[8,', 1) + weights[8 + length :]
    (fake / "model.safetensors").write_bytes(lie)
    assert_refused(invoke(args), 3, "model.safetensors", "corrupt safetensors")


def test_torchrun_rank_writes_its_shard(demo_data, demo_proposals, regions_from_proposals, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = _extract(demo_data, tmp_path / "regions.safetensors", "--proposals", demo_proposals)
    assert result.exit_code == 0, result.output
    shard = Regions(tmp_path / "regions-00001-of-00002.safetensors")
    whole = Regions(regions_from_proposals)
    assert np.array_equal(shard.image_ids, whole.image_ids[len(whole.image_ids) // 2 :])


def test_student_backbone_must_match_the_detector(tiny_detector, demo_data, tmp_path):
    result = invoke(["extract-regions", "--images", demo_data / "images", "--detector", tiny_detector,
                     "--student-backbone", "resnet18", "--teacher-backbone", TINY_TEACHER_BACKBONE,
                     "--out", tmp_path / "r.safetensors"])  # fmt: skip
    assert_refused(result, 2, "detector's backbone")


def test_make_demo_data_replaces_a_previous_run_atomically(tmp_path):
    out = tmp_path / "demo"
    assert invoke(["make-demo-data", "--out", out, "--num-images", 12, "--image-size", 48]).exit_code == 0
    assert invoke(["make-demo-data", "--out", out, "--num-images", 10, "--image-size", 48]).exit_code == 0
    assert len(list((out / "images").iterdir())) == 10  # no stale images of the bigger run
    result = invoke(["make-demo-data", "--out", out, "--num-images", 3])
    assert result.exit_code == 2 and len(list((out / "images").iterdir())) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
