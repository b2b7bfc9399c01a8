"""The package's layers point one way (docs/architecture.md): every import, including those inside functions,
goes from a layer to one it may use; module imports form no cycle; no module imports another module's private
names. The rules are the table below, which docs/architecture.md reproduces (checked here too)."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Top-level modules and packages every layer may use.
BASE = {"errors", "version", "jsonfile", "progress", "runtime", "distributed", "options", "structures"}
# layer -> the layers it may import besides itself and the base.
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
    "report": {"artifacts"},
    "stages": {"artifacts", "eval", "data", "vision", "models", "losses", "train", "tasks", "bench", "export", "demo",
               "report"},
    "cli": {"stages", "train", "data", "artifacts"},
    "entry": {"cli"},  # the package's __init__ and __main__
}

Modules = dict[str, Path]


def collect(package: Path) -> Modules:
    """Dotted module name → file, for every .py file of `package` (a directory on the import path's root)."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "entry"
    return "base" if parts[1] in BASE else parts[1]


def imports(module: str, modules: Modules) -> list[tuple[str, list[str], int]]:
    """(target module, names imported from it, line) of every import of the package in `module`, at any depth."""
    path = modules[module]
    top = module.split(".")[0]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == top]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base.split(".")[0] != top:
                continue
            names = [a.name for a in node.names]
            submodules = [n for n in names if f"{base}.{n}" in modules]
            found += [(f"{base}.{n}", [], node.lineno) for n in submodules]
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                found.append((base, rest, node.lineno))
    return found


def upward_imports(modules: Modules) -> list[str]:
    wrong = []
    for module in sorted(modules):
        source = layer(module)
        allowed = MAY_IMPORT.get(source, set()) | {source, "base"}
        for target, _, line in imports(module, modules):
            if target not in modules:
                wrong.append(f"{module}:{line} imports {target}, which does not exist")
            elif layer(target) not in allowed:
                wrong.append(f"{module}:{line} ({source}) imports {target} ({layer(target)})")
    return wrong


def import_cycles(modules: Modules) -> list[str]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module in modules:
        graph[module] |= {t for t, _, _ in imports(module, modules) if t in modules and t != module}
    done: set[str] = set()
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in stack:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in done:
                visit(nxt, stack + [nxt])
        done.add(node)

    for module in sorted(modules):
        if module not in done:
            visit(module, [module])
    return cycles


def private_imports(modules: Modules) -> list[str]:
    return [f"{module}:{line} imports {name} from {target}" for module in sorted(modules)
            for target, names, line in imports(module, modules) if target != module
            for name in names if name.startswith("_") and not name.startswith("__")]  # fmt: skip


PACKAGE = collect(ROOT / "vlkd_cli")


def test_every_import_points_down() -> None:
    wrong = upward_imports(PACKAGE)
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    cycles = import_cycles(PACKAGE)
    assert not cycles, "\n".join(cycles)


def test_no_private_name_crosses_a_module() -> None:
    wrong = private_imports(PACKAGE)
    assert not wrong, "\n".join(wrong)


def test_every_folder_is_a_layer() -> None:
    folders = {p.name for p in (ROOT / "vlkd_cli").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders - BASE <= set(MAY_IMPORT), folders - BASE - set(MAY_IMPORT)
    assert {layer(m) for m in PACKAGE} <= set(MAY_IMPORT)


def test_the_docs_table_is_this_table() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)/` \|[^|]*\| ([^|]*) \|$", text, flags=re.M))
    documented = {name: set(re.findall(r"`(\w+)`", cell)) for name, cell in rows.items()}
    assert documented == {name: allowed for name, allowed in MAY_IMPORT.items() if name not in ("base", "entry")}


def test_the_checks_find_what_they_are_for(tmp_path: Path) -> None:
    """A package with an upward import hidden in a function, a relative-import cycle and a private import."""
    pkg = tmp_path / "vlkd_cli"
    files = {
        "__init__.py": "",
        "errors.py": "",
        "eval/__init__.py": "",
        "eval/metric.py": "def f():\n    from vlkd_cli.tasks.module import g\n    return g\n",
        "data/__init__.py": "",
        "data/a.py": "from . import b\nfrom vlkd_cli.eval.metric import f\n",
        "data/b.py": "from .a import _hidden\nfrom vlkd_cli.errors import VlkdError\n",
        "tasks/__init__.py": "",
        "tasks/module.py": "from vlkd_cli.data.a import f\n\n\ndef g():\n    pass\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    modules = collect(pkg)
    assert upward_imports(modules) == ["vlkd_cli.eval.metric:2 (eval) imports vlkd_cli.tasks.module (tasks)"]
    cycles = import_cycles(modules)
    assert "vlkd_cli.data.a -> vlkd_cli.data.b -> vlkd_cli.data.a" in cycles
    assert any("vlkd_cli.eval.metric -> vlkd_cli.tasks.module" in c for c in cycles)
    assert private_imports(modules) == ["vlkd_cli.data.b:1 imports _hidden from vlkd_cli.data.a"]
