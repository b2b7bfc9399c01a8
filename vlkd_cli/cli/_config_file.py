"""`--config FILE`: a command's options from a YAML or JSON file, as LightningCLI and timm's train script take them.

The file is a mapping whose keys are the command's flag names (`batch_size`, `batch-size` or `--batch-size`); flags
given on the command line win over it. A training run's own `config.json` is a valid `--config` too: it records
the options the run was given under `"options"`, so `vlkd finetune --config runs/teacher/config.json --out
runs/teacher-again` repeats the run. An unknown key is a usage error naming the file (exit 2), so a typo is not
silently ignored. Paths in the file are read as on the command line (relative to the working directory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

RUN_CONTROL = ("config", "resume", "overwrite")  # options of a run that are not part of its recipe


def read_config_file(path: Path) -> dict[str, Any]:
    """The option mapping of `path` (JSON, or YAML by its suffix); a vlkd output's config.json gives its options."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml  # PyYAML: installed with transformers

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise typer.BadParameter(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise typer.BadParameter(f"{path}: not valid JSON: {err}") from None
    if isinstance(data, dict) and "vlkd_kind" in data:
        data = data.get("options")
        if not isinstance(data, dict):
            raise typer.BadParameter(f"{path}: this output records no command options (written by an older vlkd?)")
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: expected a mapping of option names to values")
    return {str(key).lstrip("-").replace("-", "_"): value for key, value in data.items()}


def load_config_file(ctx: typer.Context, value: Path | None) -> Path | None:
    """Eager callback: the file's options become the command's defaults (flags on the command line override)."""
    if value is None:
        return None
    options = read_config_file(value)
    names = {param.name for param in ctx.command.params} - {"config"}
    unknown = sorted(set(options) - names)
    if unknown:
        verb = "is not an option" if len(unknown) == 1 else "are not options"
        raise typer.BadParameter(f"{value}: {', '.join(unknown)} {verb} of 'vlkd {ctx.command.name}'")
    ctx.default_map = {**(ctx.default_map or {}), **options}
    return value


def recorded_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options a run writes into its output so that the output is a valid `--config` (JSON values; paths as
    strings; run-control flags such as --resume left out)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {name: plain(value) for name, value in options.items() if name not in RUN_CONTROL}


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Options from a YAML or JSON file (keys: flag names; flags given here win); a "
                 "training run's config.json repeats that run.", exists=True, dir_okay=False, is_eager=True,
                 callback=load_config_file),
]  # fmt: skip
