"""The `vlkd` command line: every command is registered here, in one visible block.

Command modules import only typer at import time; torch and friends load inside the command, so `--help`
and argument errors answer fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vlkd_cli.cli._app import OneLineErrors, OrderedOptions
from vlkd_cli.cli.benchmark_latency import EPILOG as LATENCY_EPILOG
from vlkd_cli.cli.benchmark_latency import benchmark_latency_cmd
from vlkd_cli.cli.demo import EPILOG as DEMO_EPILOG
from vlkd_cli.cli.demo import demo_cmd
from vlkd_cli.cli.distill import EPILOG as DISTILL_EPILOG
from vlkd_cli.cli.distill import distill_cmd
from vlkd_cli.cli.env import EPILOG as ENV_EPILOG
from vlkd_cli.cli.env import env_cmd
from vlkd_cli.cli.eval import (
    CAPTION_EPILOG,
    RETRIEVAL_EPILOG,
    VQA_EPILOG,
    eval_caption_cmd,
    eval_retrieval_cmd,
    eval_vqa_cmd,
)
from vlkd_cli.cli.export import EPILOG as EXPORT_EPILOG
from vlkd_cli.cli.export import export_cmd
from vlkd_cli.cli.extract_regions import EPILOG as EXTRACT_EPILOG
from vlkd_cli.cli.extract_regions import extract_regions_cmd
from vlkd_cli.cli.finetune import ADAPT_EPILOG, adapt_teacher_cmd, finetune_cmd
from vlkd_cli.cli.finetune import EPILOG as FINETUNE_EPILOG
from vlkd_cli.cli.import_regions import EPILOG as IMPORT_REGIONS_EPILOG
from vlkd_cli.cli.import_regions import import_regions_cmd
from vlkd_cli.cli.import_teacher import EPILOG as IMPORT_TEACHER_EPILOG
from vlkd_cli.cli.import_teacher import import_teacher_cmd
from vlkd_cli.cli.inspect import EPILOG as INSPECT_EPILOG
from vlkd_cli.cli.inspect import inspect_cmd
from vlkd_cli.cli.make_demo_data import EPILOG as DEMO_DATA_EPILOG
from vlkd_cli.cli.make_demo_data import make_demo_data_cmd
from vlkd_cli.cli.report import EPILOG as REPORT_EPILOG
from vlkd_cli.cli.report import report_cmd
from vlkd_cli.cli.train_detector import EPILOG as DETECTOR_EPILOG
from vlkd_cli.cli.train_detector import train_detector_cmd
from vlkd_cli.version import __version__

app = typer.Typer(
    name="vlkd",
    help="Compress vision-language transformers by knowledge distillation (DistillVLM, DCD) and measure what it bought.",
    no_args_is_help=True,
    add_completion=True,
    cls=OneLineErrors,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command("make-demo-data", epilog=DEMO_DATA_EPILOG)(make_demo_data_cmd)
app.command("train-detector", epilog=DETECTOR_EPILOG)(train_detector_cmd)
app.command("extract-regions", epilog=EXTRACT_EPILOG)(extract_regions_cmd)
app.command("finetune", epilog=FINETUNE_EPILOG)(finetune_cmd)
app.command("adapt-teacher", epilog=ADAPT_EPILOG)(adapt_teacher_cmd)
app.command("distill", epilog=DISTILL_EPILOG)(distill_cmd)
app.command("eval-caption", epilog=CAPTION_EPILOG)(eval_caption_cmd)
app.command("eval-vqa", epilog=VQA_EPILOG)(eval_vqa_cmd)
app.command("eval-retrieval", epilog=RETRIEVAL_EPILOG)(eval_retrieval_cmd)
app.command("benchmark-latency", epilog=LATENCY_EPILOG, cls=OrderedOptions)(benchmark_latency_cmd)
app.command("import-teacher", epilog=IMPORT_TEACHER_EPILOG)(import_teacher_cmd)
app.command("import-regions", epilog=IMPORT_REGIONS_EPILOG)(import_regions_cmd)
app.command("export", epilog=EXPORT_EPILOG)(export_cmd)
app.command("inspect", epilog=INSPECT_EPILOG)(inspect_cmd)
app.command("demo", epilog=DEMO_EPILOG)(demo_cmd)
app.command("report", epilog=REPORT_EPILOG)(report_cmd)
app.command("env", epilog=ENV_EPILOG)(env_cmd)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vlkd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", "-V", help="Print the version and exit.", callback=_version,
                                          is_eager=True)] = False,
) -> None:  # fmt: skip
    """Compress vision-language transformers by knowledge distillation (DistillVLM, DCD) and measure what it bought."""


def main() -> None:
    """Console-script entry point."""
    app()
