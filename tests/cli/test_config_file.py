"""`--config FILE` (YAML or JSON, keys = flag names, flags win), and a run repeated from its own config.json."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from tests.conftest import assert_refused, invoke


def _finetune(demo_data: Path, regions: Path, out: Path, *extra) -> dict:
    result = invoke(["finetune", "--task", "caption", "--model", "tiny", "--regions", regions, "--annotations",
                     demo_data / "karpathy.json", "--split", "train", "--max-steps", 2, "--batch-size", 4,
                     "--device", "cpu", "--out", out, *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all((x[k] == y[k]).all() for k in x)


def test_a_run_repeated_from_its_config_json_is_bit_identical(demo_data, demo_regions, tmp_path) -> None:
    first = tmp_path / "first"
    _finetune(demo_data, demo_regions, first, "--lr", 3e-4)
    options = json.loads((first / "config.json").read_text())["options"]
    assert options["lr"] == 3e-4 and options["regions"] == [str(demo_regions)] and "resume" not in options
    again = tmp_path / "again"
    result = invoke(["finetune", "--config", first / "config.json", "--out", again])
    assert result.exit_code == 0, result.output
    assert _same_weights(first, again)
    assert json.loads((again / "config.json").read_text())["options"] == {**options, "out": str(again)}


def test_yaml_config_with_flags_overriding_it(demo_data, demo_regions, tmp_path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"task: caption\nmodel: tiny\nregions: [{demo_regions}]\n"
                      f"annotations: {demo_data / 'karpathy.json'}\nsplit: train\nmax-steps: 1\n--batch-size: 4\n"
                      "device: cpu\nlr: 0.5\n")  # fmt: skip
    out = tmp_path / "yaml"
    result = invoke(["finetune", "--config", config, "--lr", "2e-4", "--out", out])
    assert result.exit_code == 0, result.output
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["options"]["lr"] == 2e-4 and recorded["options"]["max_steps"] == 1
    assert recorded["training"]["final_step"] == 1


def test_unknown_keys_and_bad_files_are_usage_errors(demo_data, tmp_path) -> None:
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"task": "caption", "lerning_rate": 1.0}))
    assert_refused(invoke(["finetune", "--config", typo, "--out", tmp_path / "x"]), 2, str(typo),
                   "lerning_rate is not an option of 'vlkd finetune'")  # fmt: skip
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert_refused(invoke(["distill", "--config", broken]), 2, str(broken), "not valid JSON")
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    assert_refused(invoke(["adapt-teacher", "--config", listed]), 2, "expected a mapping")


def test_every_long_command_takes_a_config_file(tmp_path) -> None:
    from vlkd_cli.cli import app

    for command in app.registered_commands:
        if command.name in ("inspect", "env", "make-demo-data", "demo", "export", "import-teacher", "report"):
            continue
        assert "--config" in invoke([command.name, "--help"]).output, command.name
