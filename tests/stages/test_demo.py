"""`vlkd demo`: the plan (every command exists; students of a task differ only in their loss terms), the summary
rows from evaluation outputs, and the resumable step runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlkd_cli.cli import app
from vlkd_cli.demo.plan import FULL, QUICK, Plan, Step, build_plan, student_dir
from vlkd_cli.demo.summary import RETRIEVAL_ROWS, ROW_NAMES, comparisons, summary_rows
from vlkd_cli.errors import RunError
from vlkd_cli.stages.demo import run_plan, stage_modules

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
        for flag in ("--model", "--teacher", "--regions", "--teacher-regions", "--rerank-model", "--detector",
                     "--itm-miner", "--dcd-pool-source"):
            value = _option(step.args, flag)
            if value is not None and value.startswith(str(tmp_path)):
                assert Path(value) in produced, f"{step.name}: {flag} {value} is not an earlier step's output"
        produced.add(step.out)
    outs = [step.out for step in plan.steps]
    assert len(outs) == len(set(outs))
    assert plan.seeds == [3 + n for n in range(sizes.seeds)]
    assert any("teacher detector" in s.name for s in plan.steps) == sizes.teacher_detector
    for step in plan.steps:  # extract-regions refuses a student backbone other than its --detector's (exit 2)
        if step.args[:1] == ["extract-regions"] and "--detector" in step.args:
            assert "--student-backbone" not in step.args, step.name
    assert any(s.args[:1] == ["eval-vqa"] for s in plan.steps) == sizes.vqa
    assert not any("--pretrained" in s.args for s in plan.steps)


@pytest.mark.parametrize("sizes", [QUICK, FULL])
def test_the_forked_runner_preloads_the_stage_of_every_command(tmp_path, sizes):
    """The runner preloads the stage of each command the plan runs before the first fork (else every step of that
    command imports it again): each maps to a stage module that exists (adapt-teacher's is finetune's, distill
    also runs dcd's)."""
    import importlib.util

    modules = stage_modules(build_plan(tmp_path, sizes, seed=0, pretrained=False))
    assert all(importlib.util.find_spec(m) is not None for m in modules), modules
    assert {"vlkd_cli.stages.finetune", "vlkd_cli.stages.dcd", "vlkd_cli.stages.eval_retrieval"} <= set(modules)
    assert len(modules) == len(set(modules))


def test_every_command_runs_on_the_demos_device(tmp_path):
    plan = build_plan(tmp_path, QUICK, seed=0, pretrained=False, device="cuda:1")
    devices = [_option(s.args, "--device") for s in plan.steps if "--device" in s.args]
    assert len(devices) > 40 and set(devices) == {"cuda:1"} and plan.config()["device"] == "cuda:1"
    training = [s for s in plan.steps if s.args[:1] in (["finetune"], ["distill"], ["adapt-teacher"])]
    assert all("--device" in s.args for s in training)


def test_caption_students_share_one_configuration_and_differ_in_losses(tmp_path):
    plan = build_plan(tmp_path, QUICK, seed=0, pretrained=True)
    runs = [s for s in plan.steps if s.out.parent.name == "students" and s.args[:1] in (["finetune"], ["distill"])
            and _option(s.args, "--task") == "caption"]  # fmt: skip
    assert len(runs) == 3 * QUICK.seeds
    for key in ("--max-steps", "--batch-size", "--lr", "--annotations", "--split", "--regions"):
        assert len({_option(s.args, key) for s in runs}) == 1, key
    assert {_option(s.args, "--seed") for s in runs} == {"0", "1", "2"}
    init = next(s for s in plan.steps if s.out == tmp_path / "student-init")
    assert _option(init.args, "--model") == str(tmp_path / "teacher") and _option(init.args, "--max-steps") == "0"
    assert {_option(s.args, "--student") or _option(s.args, "--model") for s in runs} == {str(init.out)}
    unadapted = [s for s in runs if "--teacher-regions" in s.args]
    assert len(unadapted) == QUICK.seeds and all(_option(s.args, "--teacher").endswith("teacher") for s in unadapted)
    assert any("--pretrained" in s.args for s in plan.steps)


def _write_metrics(path: Path, metrics: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps(metrics))


def _losses(args: list[str]) -> set[str]:
    return {args[i + 1] for i, a in enumerate(args) if a == "--loss"}


def _without(args: list[str], flags: tuple[str, ...]) -> list[str]:
    """`args` without the given flags and their values."""
    drop = {i for i, a in enumerate(args) if a in flags} | {i + 1 for i, a in enumerate(args) if a in flags}
    return [a for i, a in enumerate(args) if i not in drop]


@pytest.mark.parametrize("sizes", [QUICK, FULL])
def test_retrieval_students_differ_from_their_twins_only_in_the_dcd_term(tmp_path, sizes):
    plan = build_plan(tmp_path, sizes, seed=0, pretrained=False)
    runs = {s.name: s for s in plan.steps if s.out.parent.name == "students" and _option(s.args, "--task") == "retrieval"}
    assert len(runs) == 4 * sizes.seeds
    for seed in plan.seeds:
        for arch in ("cross", "dual"):
            plain, dcd = runs[f"{arch} student no DCD (seed {seed})"], runs[f"{arch} student DCD (seed {seed})"]
            assert _losses(plain.args) == {"task=1"} and _losses(dcd.args) == {"dcd=1", "task=1"}
            assert _without(plain.args, ("--loss", "--out")) == _without(dcd.args, ("--loss", "--out"))
            assert _option(dcd.args, "--init-from-teacher") == "uniform" and _option(dcd.args, "--arch") == arch
            assert _option(dcd.args, "--student-features") == "teacher" and _option(dcd.args, "--seed") == str(seed)
    for key in ("--max-steps", "--lr", "--annotations", "--split", "--regions", "--dcd-pool", "--dcd-k", "--student"):
        assert len({_option(s.args, key) for s in runs.values()}) == 1, key
    teacher = next(s for s in plan.steps if s.out == tmp_path / "teacher-itm")
    assert _option(teacher.args, "--model") == str(tmp_path / "teacher")  # the caption teacher, fine-tuned
    assert _option(teacher.args, "--itm-miner") == str(tmp_path / "retriever")
    cross = [s for s in runs.values() if _option(s.args, "--arch") == "cross"]
    assert {_option(s.args, "--dcd-pool-source") for s in cross} == {str(tmp_path / "retriever")}
    evaluations = [s for s in plan.steps if s.args[:1] == ["eval-retrieval"]]
    assert all(_option(s.args, "--folds") == str(sizes.folds) for s in evaluations)
    timed = next(s for s in plan.steps if _option(s.args, "--task") == "retrieval" and s.args[0] == "benchmark-latency")
    depths = {_option(s.args, "--rerank-k") for s in [*evaluations, timed] if "--rerank-k" in s.args}
    assert depths == {str(sizes.rerank_k)} and "--rerank-k" in timed.args  # two-stage is timed at its evaluated depth
    data = next(s for s in plan.steps if s.args[:1] == ["make-demo-data"])
    assert _option(data.args, "--test-images") == str(sizes.test_images) and sizes.test_images >= 100


def test_summary_rows_from_the_evaluation_outputs(tmp_path):
    plan = build_plan(tmp_path, QUICK, seed=0, pretrained=False)
    ev = tmp_path / "eval"
    keys = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")
    _write_metrics(ev / "teacher", {"CIDEr": 1.5, "Bleu_4": 0.4})
    _write_metrics(ev / "teacher-adapted", {"CIDEr": 1.4, "Bleu_4": 0.38})
    _write_metrics(ev / "teacher-itm", {k: 50.0 for k in keys})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "priors.json").write_text(json.dumps({"caption_largest_object_cider": 1.2}))
    for n, seed in enumerate(plan.seeds):
        for name in ("student no KD", "student KD no adaptation", "student KD + adaptation"):
            _write_metrics(ev / student_dir(tmp_path, name, seed).name, {"CIDEr": 1.0 + n, "Bleu_4": 0.3})
        for name in ("cross student no DCD", "cross student DCD", "dual student no DCD", "dual student DCD"):
            gain = 5.0 if name.endswith(" DCD") and "no DCD" not in name else 0.0
            _write_metrics(ev / student_dir(tmp_path, name, seed).name, {k: 10.0 * (n + 1) + gain for k in keys})
        _write_metrics(ev / (student_dir(tmp_path, "dual student DCD", seed).name + "-two-stage"), {k: 48.0 for k in keys})
    (tmp_path / "latency").mkdir()
    student = student_dir(tmp_path, "student KD + adaptation", 0)
    results = [{"model": str(tmp_path / "teacher"), "batch_size": 1, "stage": "total", "median_ms": 80.0},
               {"model": str(student), "batch_size": 1, "stage": "total", "median_ms": 20.0},
               {"model": str(student), "batch_size": 1, "stage": "transformer", "median_ms": 5.0}]  # fmt: skip
    (tmp_path / "latency" / "latency.json").write_text(json.dumps({"results": results}))
    (tmp_path / "latency-retrieval").mkdir()
    cross, dual = (str(student_dir(tmp_path, f"{arch} student DCD", 0)) for arch in ("cross", "dual"))
    results = [{"model": str(tmp_path / "teacher-itm"), "stage": "total", "median_ms": 90000.0},
               {"model": str(tmp_path / "teacher-itm"), "stage": "score_pairs", "median_ms": 89000.0},
               {"model": cross, "stage": "total", "median_ms": 30000.0},
               {"model": dual, "stage": "total", "median_ms": 600.0},
               {"model": dual, "stage": "two_stage_total", "median_ms": 3000.0}]  # fmt: skip
    (tmp_path / "latency-retrieval" / "latency.json").write_text(json.dumps({"results": results}))
    rows = {row["name"]: row for row in summary_rows(plan)}
    assert tuple(rows) == ROW_NAMES
    assert rows["teacher"]["CIDEr"] == 1.5 and rows["teacher"]["i2t_r1"] == 50.0 and rows["teacher"]["latency_ms"] == 80
    assert rows["largest-object template"]["CIDEr"] == 1.2
    assert rows["student KD + adaptation"]["CIDEr"] == pytest.approx(2.0) and rows["student no KD"]["seeds"] == 3
    assert rows["student no KD"]["latency_ms"] == 20.0
    assert rows["dual student DCD"]["t2i_r1"] == pytest.approx(25.0) and rows["two-stage"]["seeds"] == 3
    assert rows["dual student DCD"]["std"]["i2t_r1"] == pytest.approx(10.0)
    gallery = {name: rows[name].get("gallery_s") for name in RETRIEVAL_ROWS}
    assert gallery == {"teacher": 90.0, "cross student no DCD": 30.0, "cross student DCD": 30.0,
                       "dual student no DCD": 0.6, "dual student DCD": 0.6, "two-stage": 3.0}  # fmt: skip
    claims = {(c["row"], c["baseline"], c["metric"]): c for c in comparisons(list(rows.values()))}
    dcd = claims["dual student DCD", "dual student no DCD", "rsum"]
    assert dcd["difference"] == pytest.approx(5.0) and dcd["spread"] == pytest.approx(20.0) and not dcd["exceeds_spread"]
    template = claims["student KD + adaptation", "largest-object template", "CIDEr"]
    assert template["difference"] == pytest.approx(0.8) and template["spread"] == pytest.approx(1.0)
    assert not template["exceeds_spread"] and len(claims) == 6


@pytest.mark.parametrize("fork", [True, False])
def test_the_runner_skips_finished_steps_and_names_a_failing_one(tmp_path, fork):
    command = (lambda args: app(args=args, prog_name="vlkd")) if fork else None  # a forked child, or a new interpreter
    calls = []
    done = tmp_path / "a.txt"
    plan = Plan(tmp_path, QUICK, 0, False)
    plan.steps.append(Step("write a", [], done, lambda: (calls.append(1), done.write_text("x"))))
    data = tmp_path / "data"
    plan.steps.append(Step("tiny data", ["make-demo-data", "--out", str(data), "--num-images", "12", "--test-images",
                                         "4", "--image-size", "32"], data))  # fmt: skip
    said = []
    run_plan(plan, said.append, command)
    run_plan(plan, said.append, command)
    assert calls == [1] and sum("skipped" in line for line in said) == 2
    assert (data / "karpathy.json").is_file()
    assert '"num_images": 12' in next((tmp_path / "logs").glob("02-*.log")).read_text()  # the command's stdout
    plan.steps.append(Step("a bad command", ["inspect", str(tmp_path / "missing.safetensors")], tmp_path / "b"))
    with pytest.raises(RunError, match="a bad command") as err:
        run_plan(plan, said.append, command)
    assert "logs" in str(err.value) and "missing.safetensors" in str(err.value)


def test_the_cli_hands_the_runner_its_own_app(tmp_path, monkeypatch):
    """`vlkd demo` runs its steps through the very app it was called from (forked children need no new interpreter)."""
    from tests.conftest import invoke
    from vlkd_cli.stages import demo as demo_stage

    seen = {}

    def fake_run(cfg, say, command):
        with pytest.raises(SystemExit) as done:
            command(["inspect", str(tmp_path / "missing.safetensors")])
        seen.update(device=cfg.device, code=done.value.code)
        return {"rows": [], "config": {}}

    monkeypatch.setattr(demo_stage, "run", fake_run)
    monkeypatch.setattr(demo_stage, "print_tables", lambda summary: None)
    result = invoke(["demo", "--quick", "--device", "cpu", "--out", tmp_path / "d"])
    assert result.exit_code == 0, result.output
    assert seen == {"device": "cpu", "code": 2}  # the step's own exit code (a usage error), not the demo's
