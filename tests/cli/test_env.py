"""`vlkd --version`, `vlkd env` and shell completion: what users of other ML CLIs expect for bug reports."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import invoke
from vlkd_cli.version import __version__


def test_version_answers_without_importing_torch() -> None:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom vlkd_cli.cli import app\n"
            "r = CliRunner().invoke(app, ['--version'])\nprint(r.output.strip())\n"
            "assert r.exit_code == 0 and 'torch' not in sys.modules\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"vlkd {__version__}"


def test_env_reports_versions_threads_and_devices() -> None:
    result = invoke(["env", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    import torch

    assert report["vlkd"] == __version__ and torch.__version__.startswith(report["torch"])
    assert report["torch_threads"] == torch.get_num_threads() and report["cuda_available"] == torch.cuda.is_available()
    for key in ("python", "timm", "transformers", "faiss-cpu", "java", "gpus"):
        assert key in report
    lines = invoke(["env"]).stdout.splitlines()
    assert f"vlkd: {__version__}" in lines and any(line.startswith("torch: ") for line in lines)


def test_shell_completion_is_offered() -> None:
    result = invoke(["--help"])
    assert "--install-completion" in result.output and "--show-completion" in result.output


ARGUMENT_ERRORS = [
    (["finetune", "--task", "caption", "--model", "tiny", "--regions", "/nope/r.safetensors", "--annotations",
      "README.md", "--out", "x"], "Invalid value for '--regions': /nope/r.safetensors: no such file"),
    (["finetune", "--task", "captoin", "--model", "tiny", "--regions", "README.md", "--annotations", "README.md",
      "--out", "x"], "Invalid value for '--task': must be one of caption, vqa, retrieval, pretrain, got 'captoin'"),
    (["eval-caption", "--predictions", "README.md", "--annotations", "README.md", "--device", "gpu", "--out", "x"],
     "Invalid value for '--device': must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    (["distill", "--bogus"], "No such option: --bogus"),
    (["eval-vqa", "--questions", "/nope.json", "--out", "x"], "'/nope.json' does not exist"),
]  # fmt: skip


def test_argument_errors_are_one_line_exit_2_before_torch_loads() -> None:
    """Missing files, bad choices, unknown flags: one line on stderr, exit 2, and torch never imported."""
    code = ("import sys, json\nfrom typer.testing import CliRunner\nfrom vlkd_cli.cli import app\nout = []\n"
            f"for args, _ in {ARGUMENT_ERRORS!r}:\n"
            "    r = CliRunner().invoke(app, args)\n"
            "    out.append([r.exit_code, r.stderr])\n"
            "assert 'torch' not in sys.modules, 'an argument error imported torch'\n"
            "print(json.dumps(out))\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for (exit_code, stderr), (args, needle) in zip(json.loads(done.stdout), ARGUMENT_ERRORS):
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert exit_code == 2 and len(lines) == 1, (args, stderr)
        assert lines[0].startswith("vlkd: error: ") and needle in lines[0], (needle, lines[0])
