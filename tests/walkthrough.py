"""The documentation's shell walk-throughs as runnable command lists, so tests run them as written (only smaller):
the commands are read from the Markdown itself, so the docs and their test cannot drift apart."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

# Sizes of a real run → sizes of a test run (everything else is run as written).
SMALLER: tuple[tuple[str, str], ...] = (
    (r"^torchrun --nproc_per_node \d+ -m vlkd_cli ", "vlkd "),
    (r"--epochs \d+", "--max-steps 2"),
    (r"--batch-size \d+", "--batch-size 4"),
    (r"--eval-every \d+", "--eval-every 1"),
    (r"--save-every \d+", "--save-every 1"),
    (r"--image-size \d+", "--image-size 64"),
    (r"--beam-size \d+", "--beam-size 2"),
    (r"--model (oscar-base|minivlm|minilm-l6|bert-base-uncased|sentence-transformers/all-MiniLM-L6-v2)(?=\s|$)",
     "--model tiny"),
    (r"--student (oscar-base|minivlm|minilm-l6|distil-base|sentence-transformers/all-MiniLM-L6-v2)(?=\s|$)",
     "--student tiny"),
    (r"--max-regions \d+", "--max-regions 10"),
    (r"--gallery-images \d+", "--gallery-images 4 --max-pairs 20"),
    (r"--gallery-texts \d+", "--gallery-texts 20"),
    (r"--batch-sizes [\d,]+", "--batch-sizes 1"),
    (r"--warmup \d+", "--warmup 0"),
    (r"--iters \d+", "--iters 1"),
    (r"--decode-length \d+", "--decode-length 3"),
)


def bash_blocks(markdown: str, heading: str) -> list[str]:
    """The ```bash blocks of the section under `heading` (up to the next heading of the same level)."""
    level = heading.split(" ")[0]
    start = markdown.index(heading + "\n")
    rest = markdown[start + len(heading) :]
    end = re.search(rf"^{level} ", rest, flags=re.M)
    section = rest[: end.start()] if end else rest
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def commands(block: str) -> list[str]:
    """The commands of a bash block: comments dropped, `\\` continuations joined, `for X in A B; do ...; done` loops
    expanded, heredocs and lines with `...` placeholders left out."""
    lines: list[str] = []
    pending = ""
    heredoc = None
    for raw in block.splitlines():
        if heredoc is not None:
            heredoc = None if raw.strip() == heredoc else heredoc
            continue
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if "<<'" in line:
            heredoc = line.split("<<'", 1)[1].split("'", 1)[0]
            continue
        if not line.strip():
            continue
        pending += line.strip()[:-1].rstrip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            lines.append(pending)
            pending = ""
    return _expand_loops(lines)


def _expand_loops(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        loop = re.fullmatch(r"for (\w+) in (.+); do", lines[i])
        if not loop:
            out.append(lines[i])
            i += 1
            continue
        end = lines.index("done", i)
        for value in loop.group(2).split():
            out += [line.replace(f"${loop.group(1)}", value) for line in lines[i + 1 : end]]
        i = end + 1
    return out


def vlkd_args(command: str) -> list[str] | None:
    """The vlkd arguments of a documented command, made small (None: not a vlkd command, or a placeholder)."""
    for pattern, replacement in SMALLER:
        command = re.sub(pattern, replacement, command)
    if not command.startswith("vlkd ") or "..." in command or "$" in command:
        return None
    return shlex.split(command)[1:]


def documented_commands(path: Path, heading: str) -> list[list[str]]:
    text = path.read_text(encoding="utf-8")
    found = [vlkd_args(c) for block in bash_blocks(text, heading) for c in commands(block)]
    return [args for args in found if args is not None]
