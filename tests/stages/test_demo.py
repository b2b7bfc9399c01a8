"""`vlkd demo`: the plan (every command exists; students of a task differ only in their loss terms), the summary
rows from evaluation outputs, and the resumable step runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlkd_cli.cli import app
from vlkd_cli.demo.plan import FULL, QUICK, Plan, Step, build_plan, student_dir
from vlkd_cli.demo.summary import ROW_NAMES, summary_rows
from vlkd_cli.errors import RunError
from vlkd_cli.stages.demo import run_plan

COMMANDS = {command.name for command in app.registered_commands}


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


@pytest.mark.parametrize("sizes", [QUICK, FULL])
def test_every_step_is_a_vlkd_command_and_outputs_are_distinct(tmp_path, sizes):
    plan = build_plan(tmp_path, sizes, seed=3, pretrained=False)
    for step in plan.steps:
        assert step.action is not None or step.args[0] in COMMANDS, step.name
        if step.action is None and "--out" in step.args:
            assert Path(_option(step.args, "--out")) == step.out
    produced = {tmp_path / "data"}
    for step in plan.steps:  # every model / regions / teacher a step reads was written by an earlier step
        for flag in ("--model", "--teacher", "--regions", "--teacher-regions", "--rerank-model", "--detector"):
            value = _option(step.args, flag)
            if value is not None and value.startswith(str(tmp_path)):
                assert Path(value) in produced, f"{step.name}: {flag} {value} is not an earlier step's output"
        produced.add(step.out)
    outs = [step.out for step in plan.steps]
    assert len(outs) == len(set(outs))
    assert plan.seeds == [3 + n for n in range(sizes.seeds)]
    assert any("teacher detector" in s.name for s in plan.steps) == sizes.teacher_detector
    assert any(s.args[:1] == ["eval-vqa"] for s in plan.steps) == sizes.vqa
    assert not any("--pretrained" in s.args for s in plan.steps)


def test_caption_students_share_one_configuration_and_differ_in_losses(tmp_path):
    plan = build_plan(tmp_path, QUICK, seed=0, pretrained=True)
    runs = [s for s in plan.steps if s.out.parent.name == "students" and s.args[:1] in (["finetune"], ["distill"])
            and _option(s.args, "--task") == "caption"]  # fmt: skip
    assert len(runs) == 3 * QUICK.seeds
    for key in ("--max-steps", "--batch-size", "--lr", "--annotations", "--split", "--regions"):
        assert len({_option(s.args, key) for s in runs}) == 1, key
    assert {_option(s.args, "--seed") for s in runs} == {"0", "1"}
    unadapted = [s for s in runs if "--teacher-regions" in s.args]
    assert len(unadapted) == QUICK.seeds and all(_option(s.args, "--teacher").endswith("teacher") for s in unadapted)
    assert any("--pretrained" in s.args for s in plan.steps)


def _write_metrics(path: Path, metrics: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps(metrics))


def _losses(args: list[str]) -> set[str]:
    return {args[i + 1] for i, a in enumerate(args) if a == "--loss"}


@pytest.mark.parametrize("sizes", [QUICK, FULL])
def test_dual_students_share_one_configuration_and_dcd_only_adds_its_loss(tmp_path, sizes):
    plan = build_plan(tmp_path, sizes, seed=0, pretrained=False)
    runs = [s for s in plan.steps if s.out.parent.name == "students" and _option(s.args, "--task") == "retrieval"]
    first = [s for s in runs if _option(s.args, "--model") == "demo-student"]
    plain = [s for s in runs if s.args[0] == "finetune" and s not in first]
    dcd = [s for s in runs if s.args[0] == "distill"]
    assert len(first) == len(plain) == len(dcd) == sizes.seeds
    for key in ("--max-steps", "--batch-size", "--lr", "--annotations", "--split", "--regions", "--arch"):
        assert len({_option(s.args, key) for s in runs}) == 1, key
    for stage1, p, d in zip(first, plain, dcd, strict=True):  # both second stages start from the same first stage
        assert _option(p.args, "--model") == _option(d.args, "--student") == str(stage1.out)
        assert _option(stage1.args, "--seed") == _option(p.args, "--seed") == _option(d.args, "--seed")
    assert all(_losses(s.args) == set() for s in first + plain)  # finetune's own (contrastive) objective
    assert all(_losses(s.args) == {"dcd=1", "task=1"} and _option(s.args, "--method") == "dcd" for s in dcd)
    pools = {(_option(s.args, "--dcd-pool"), _option(s.args, "--dcd-k")) for s in dcd}
    assert pools == {(str(sizes.dcd_pool), str(sizes.dcd_k))}
    teacher = next(s for s in plan.steps if s.out == tmp_path / "teacher-itm")
    assert _option(teacher.args, "--model") == str(tmp_path / "teacher")  # the caption teacher, fine-tuned


def test_summary_rows_from_the_evaluation_outputs(tmp_path):
    plan = build_plan(tmp_path, QUICK, seed=0, pretrained=False)
    ev = tmp_path / "eval"
    _write_metrics(ev / "teacher", {"CIDEr": 1.5, "Bleu_4": 0.4})
    _write_metrics(ev / "teacher-adapted", {"CIDEr": 1.4, "Bleu_4": 0.38})
    _write_metrics(ev / "teacher-itm", {k: 50.0 for k in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")})
    for n, seed in enumerate(plan.seeds):
        for name in ("student no KD", "student KD no adaptation", "student KD + adaptation"):
            _write_metrics(ev / student_dir(tmp_path, name, seed).name, {"CIDEr": 1.0 + n, "Bleu_4": 0.3})
        for name, suffix in (("dual student no DCD", ""), ("dual student DCD", ""), ("dual student DCD", "-two-stage")):
            recall = {k: 10.0 * (n + 1) for k in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")}
            _write_metrics(ev / (student_dir(tmp_path, name, seed).name + suffix), recall)
    (tmp_path / "latency").mkdir()
    student = student_dir(tmp_path, "student KD + adaptation", 0)
    results = [{"model": str(tmp_path / "teacher"), "batch_size": 1, "stage": "total", "median_ms": 80.0},
               {"model": str(student), "batch_size": 1, "stage": "total", "median_ms": 20.0},
               {"model": str(student), "batch_size": 1, "stage": "transformer", "median_ms": 5.0}]  # fmt: skip
    (tmp_path / "latency" / "latency.json").write_text(json.dumps({"results": results}))
    (tmp_path / "latency-retrieval").mkdir()
    dcd = str(student_dir(tmp_path, "dual student DCD", 0))
    results = [{"model": str(tmp_path / "teacher-itm"), "stage": "total", "median_ms": 90000.0},
               {"model": str(tmp_path / "teacher-itm"), "stage": "score_pairs", "median_ms": 89000.0},
               {"model": dcd, "stage": "total", "median_ms": 600.0},
               {"model": dcd, "stage": "two_stage_total", "median_ms": 3000.0}]  # fmt: skip
    (tmp_path / "latency-retrieval" / "latency.json").write_text(json.dumps({"results": results}))
    rows = {row["name"]: row for row in summary_rows(plan)}
    assert tuple(rows) == ROW_NAMES
    assert rows["teacher"]["CIDEr"] == 1.5 and rows["teacher"]["i2t_r1"] == 50.0 and rows["teacher"]["latency_ms"] == 80
    assert rows["student KD + adaptation"]["CIDEr"] == pytest.approx(1.5) and rows["student no KD"]["seeds"] == 2
    assert rows["student no KD"]["latency_ms"] == 20.0
    assert rows["dual student DCD"]["t2i_r1"] == pytest.approx(15.0) and rows["two-stage"]["seeds"] == 2
    assert rows["dual student DCD"]["std"]["i2t_r1"] == pytest.approx(7.0710678, abs=1e-6)
    gallery = {name: rows[name].get("gallery_s") for name in ("teacher", *ROW_NAMES[5:])}
    assert gallery == {"teacher": 90.0, "dual student no DCD": 0.6, "dual student DCD": 0.6, "two-stage": 3.0}
    assert not any("adapt" in name for name in rows if name not in ROW_NAMES)


def test_the_runner_skips_finished_steps_and_names_a_failing_one(tmp_path):
    calls = []
    done = tmp_path / "a.txt"
    plan = Plan(tmp_path, QUICK, 0, False)
    plan.steps.append(Step("write a", [], done, lambda: (calls.append(1), done.write_text("x"))))
    said = []
    run_plan(plan, said.append)
    run_plan(plan, said.append)
    assert calls == [1] and any("skipped" in line for line in said)
    plan.steps.append(Step("a bad command", ["inspect", str(tmp_path / "missing.safetensors")], tmp_path / "b"))
    with pytest.raises(RunError, match="a bad command") as err:
        run_plan(plan, said.append)
    assert "logs" in str(err.value)
