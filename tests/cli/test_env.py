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
