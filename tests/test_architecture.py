"""The package's layers point one way (docs/architecture.md): every import, including those inside functions,
goes from a layer to one it may use; module imports form no cycle; no module imports another module's private
names. The rules are the table below, which docs/architecture.md reproduces and this test checks against it."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vlkd_cli"

BASE = {"errors", "version", "jsonfile", "progress", "runtime", "distributed", "options", "structures"}

# layer -> the layers it may import (besides itself and the base, which every layer may use).
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "artifacts": set(),
    "eval": {"artifacts"},
    "data": {"artifacts", "eval"},
    "vision": {"artifacts", "data"},
    "models": {"eval"},
    "losses": set(),
    "train": {"artifacts"},
    "tasks": {"artifacts", "eval", "data", "vision", "models", "losses", "train"},
    "bench": {"artifacts", "eval", "data", "vision", "models", "tasks"},
    "export": {"artifacts", "models", "train"},
    "demo": {"artifacts"},
    "stages": {"artifacts", "eval", "data", "vision", "models", "losses", "train", "tasks", "bench", "export", "demo"},
    "cli": {"stages", "train", "data"},
    "entry": {"cli"},  # vlkd_cli/__init__.py and __main__.py
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return "entry"
    return "base" if parts[1] in BASE else parts[1]


def imports(module: str) -> list[tuple[str, list[str], int]]:
    """(target module, imported names, line) of every vlkd_cli import in `module`, at any depth."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("vlkd_cli")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if not base.startswith("vlkd_cli"):
                continue
            names = [a.name for a in node.names]
            submodules = [n for n in names if f"{base}.{n}" in MODULES]
            found += [(f"{base}.{n}", [], node.lineno) for n in submodules]
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                found.append((base, rest, node.lineno))
    return found


def test_every_import_points_down() -> None:
    wrong = []
    for module in sorted(MODULES):
        source = layer(module)
        allowed = MAY_IMPORT[source] | {source, "base"}
        for target, _, line in imports(module):
            if target not in MODULES:
                wrong.append(f"{module}:{line} imports {target}, which does not exist")
            elif layer(target) not in allowed:
                wrong.append(f"{module}:{line} ({source}) imports {target} ({layer(target)})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module in MODULES:
        for target, _, _ in imports(module):
            if target in MODULES and target != module:
                graph[module].add(target)
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [node, nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [])
    assert not cycles, "\n".join(cycles)


def test_no_private_name_crosses_a_module() -> None:
    wrong = [f"{module}:{line} imports {name} from {target}" for module in sorted(MODULES)
             for target, names, line in imports(module) if target != module
             for name in names if name.startswith("_") and not name.startswith("__")]  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_every_package_has_a_layer() -> None:
    packages = {layer(m) for m in MODULES}
    assert packages <= set(MAY_IMPORT), packages - set(MAY_IMPORT)
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} - BASE <= set(MAY_IMPORT)


def test_the_docs_table_is_this_table() -> None:
    """docs/architecture.md lists, per layer, what it may import: the same sets as MAY_IMPORT."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)/?` \|[^|]*\| ([^|]*) \|$", text, flags=re.M))
    documented = {name: set(re.findall(r"`(\w+)`", cell)) - {"base"} for name, cell in rows.items()}
    expected = {name: allowed for name, allowed in MAY_IMPORT.items() if name not in ("base", "entry")}
    assert documented == expected


def test_the_checker_sees_a_wrong_arrow(tmp_path: Path) -> None:
    """The walker finds imports inside functions and relative imports (so a violation cannot hide there)."""
    module = "vlkd_cli.eval.vqa"
    found = {t for t, _, _ in imports(module)}
    assert "vlkd_cli.eval.vqa_normalize" in found
    nested = [m for m in MODULES if any(line > 0 for _, _, line in imports(m))]
    assert nested
    source = "def f():\n    from vlkd_cli.stages.finetune import run\n"
    tree = ast.parse(source)
    assert any(isinstance(n, ast.ImportFrom) and n.module == "vlkd_cli.stages.finetune" for n in ast.walk(tree))


@pytest.mark.parametrize("module", ["vlkd_cli.eval", "vlkd_cli.data", "vlkd_cli.models", "vlkd_cli.losses"])
def test_lower_layers_do_not_reach_up(module: str) -> None:
    """Spot checks of the arrows the layout was built to remove."""
    below = {t for m in MODULES if m.startswith(module) for t, _, _ in imports(m)}
    assert not any(t.startswith(("vlkd_cli.stages", "vlkd_cli.tasks", "vlkd_cli.train", "vlkd_cli.cli")) for t in below)
