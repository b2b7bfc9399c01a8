"""Regenerate tests/eval/data/vqa_golden.json by running the official VQA evaluation on generated questions.

The official code is not vendored: it is read from a git clone of GT-Vision-Lab/VQA given on the command line
(a work tree or a bare/mirror git directory), at the two commits `vlkd_cli.eval.vqa` reproduces:
a013f00 (version "2021", HEAD) and 458a8b2 (version "2016"), file `PythonEvaluationTools/vqaEvaluation/vqaEval.py`.
That file is Python 2; the only change made to run it under Python 3 is turning its `print "..."` statements into
calls, so the numbers are those of the official code under Python 3 (Python 3 `round`).

Usage:
    git clone https://github.com/GT-Vision-Lab/VQA /tmp/VQA
    .venv/bin/python scripts/make_vqa_golden.py /tmp/VQA [--out tests/eval/data/vqa_golden.json] [--seed 0]

The golden file holds: `normalization` ([input, processPunctuation(input), processDigitArticle(processPunctuation
(input))] per odd string, identical at both commits), `annotations` and `predictions` (~300 generated questions,
10 answers each), and per version the official `accuracy` (n=2), `accuracy_unrounded` (n=30, i.e. the exact float
percentages) and `evalQA` (n=2).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import platform
import random
import re
import subprocess
import types
import warnings
from pathlib import Path
from typing import Any

OFFICIAL_FILE = "PythonEvaluationTools/vqaEvaluation/vqaEval.py"
COMMITS = {
    "2021": "a013f0043c1e2cdc995922dfe257f7149aa9af06",
    "2016": "458a8b268b1a239dc388e0af4423f3fe7477b04f",
}
EXACT_DIGITS = 30  # round(x, 30) == x for every percentage: the "unrounded" values

# Groups of answers that some normalisation step may (or may not) make equal.
CLUSTERS: dict[str, list[list[str]]] = {
    "yes/no": [["yes", "Yes", "YES", "yes!", "yes.", "Yes, it is", "yes ", " yes"], ["no", "No", "no.", "No!", "nope"]],
    "number": [
        ["2", "two", "Two", "2.", "two!", "2 ", "a two"],
        ["0", "zero", "none", "None", "0.", "nothing"],
        ["10", "ten", "Ten", "10!"],
        ["3.5", "3,5", "3 , 5", "3.5.", "three and half"],
        ["1,000", "1000", "1, 000", "1 000", "one thousand"],
        ["10:30", "10:30.", "10.30", "half past ten"],
    ],
    "other": [
        ["dog", "a dog", "the dog", "Dog", "an dog", "dog.", "dogs", "the  dog"],
        ["t-shirt", "t shirt", "tshirt", "T-Shirt", "t - shirt", "t-shirt!"],
        ["black and white", "black/white", "black & white", "black / white", "black-and-white", "Black And White"],
        ["don't know", "dont know", "don't  know", "dont", "don't", "do not know"],
        ["it's a cat", "its cat", "it's cat", "its a cat", "isnt", "isn't"],
        ["what's that", "whats that", "thats", "that's"],
        ["a.m.", "am", "a.m", "AM", "a. m."],
        ["u.s.a.", "usa", "USA", "U.S.A", "u.s.a"],
        ["somebody'd", "somebodyd", "Im", "im", "I'm", "twas", "'twas"],
        ["n/a", "na", "n / a", "N/A", "n\\a"],
        ["(left)", "left", "[left]", "{left}", "<left>", "left?", "`left`", '"left"', "left_"],
        ["well-done", "well done", "welldone", "well_done", "well -done"],
        ["e-mail", "email", "e mail", "@email", "e@mail"],
        ["école", "École", "ecole", "naïve", "NAÏVE"],
        ["", " ", "\t", ".", "..", "?", "!!"],
    ],
}

ODD_STRINGS = [
    "3.5",
    ".5",
    "5.",
    "a.m",
    "3,5",
    "3, 5",
    "3 ,5",
    "a,b",
    "a, b",
    "1,2 and a-b",
    "x-y z -w",
    "a;b",
    "a ; b",
    "(a)",
    "( a )",
    "a=b",
    "a+b",
    "a\\b",
    "a_b",
    "a>b",
    "a<b",
    "a@b",
    "a`b",
    "a?b",
    "a!b",
    "a'b",
    "a:b",
    "a*b#c$d%e&f~g^h|i",
    "." * 40 + "x",
    "a." * 40,
    "1." * 3,
    "v1.2.3",
    "e.g.",
    "...",
    "one two three",
    "ONE",
    "The End",
    "an apple",
    "A",
    "a",
    "the the",
    "none of the above",
    "zero",
    "Ten",
    "eleven",
    "Im",
    "Ive",
    "Id've",
    "I'dve",
    "im",
    "somebody'd",
    "somebodyd've",
    "twas",
    "yall'll",
    "let's",
    "dont know",
    "isnt it",
    "whats up",
    "oclock",
    "\tyes\n",
    "yes\nno",
    "  spaced   out  ",
    "\u00a0nbsp\u00a0",
    "٣,٣",
    "٣.",
    "٣",
    "x.٣",
    "ÉCOLE",
    "İstanbul",
    "straße",
    "",
    " ",
    "a - b",
    "a -b",
    "a- b",
    "t-shirt",
    "t - shirt",
    "(none)",
    "none.",
    "[1, 2]",
    "{x}",
    '"q"',
    "<3",
    "1/2",
    "1 / 2",
    "50%",
    "$5",
    "5 $",
    "#1",
    "10:30",
    "10.30",
    "3.",
]

QUESTION_TYPES = {
    "yes/no": ["is the", "are there", "does the", "is this"],
    "number": ["how many", "what number is", "what time"],
    "other": ["what color is the", "what is the", "what is", "where is the", "what kind of"],
}


def official_source(repo: Path, commit: str) -> str:
    """The official vqaEval.py at `commit`, read with `git show` from the clone at `repo`."""
    result = subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{OFFICIAL_FILE}"], check=True, capture_output=True, text=True
    )
    return result.stdout


def load_official(repo: Path, commit: str) -> types.ModuleType:
    """Execute the official module, its Python 2 print statements turned into calls."""
    source = re.sub(r"^(\s*)print\s+(?!\()(.+)$", r"\1print(\2)", official_source(repo, commit), flags=re.MULTILINE)
    module = types.ModuleType(f"vqaEval_{commit[:7]}")
    with warnings.catch_warnings():  # its non-raw "\\d" patterns warn on Python >= 3.6
        warnings.simplefilter("ignore")
        exec(compile(source, f"{repo}@{commit[:7]}:{OFFICIAL_FILE}", "exec"), module.__dict__)  # noqa: S102
    return module


class _Index:
    """The two members of the official `VQA` helper the evaluation reads: `qa` and `getQuesIds()`."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.qa = {entry["question_id"]: entry for entry in entries}

    def getQuesIds(self) -> list[int]:
        return [entry["question_id"] for entry in self.entries]


def decorate(rng: random.Random, text: str) -> str:
    """Randomly vary case, whitespace and trailing punctuation."""
    roll = rng.random()
    if roll < 0.15:
        return text.capitalize()
    if roll < 0.25:
        return text + rng.choice(["!", ".", "?", " .", "..."])
    if roll < 0.35:
        return rng.choice([" ", "\t", "\n", "  "]) + text + rng.choice(["", " ", "\n", "\t "])
    if roll < 0.42:
        return rng.choice(["the ", "a ", "The "]) + text
    return text


def make_question(rng: random.Random, question_id: int) -> tuple[dict[str, Any], str]:
    """One annotation (10 answers) and a prediction."""
    answer_type = rng.choice(list(CLUSTERS))
    cluster = rng.choice(CLUSTERS[answer_type])
    other = rng.choice(rng.choice(list(CLUSTERS.values())))
    mode = rng.random()
    if mode < 0.3:  # the 10 answers agree (only whitespace may differ)
        base = rng.choice(cluster)
        answers = (
            [base] * 10 if rng.random() < 0.8 else [rng.choice([base, base + " ", "\t" + base]) for _ in range(10)]
        )
    elif mode < 0.85:  # a few variants of one answer, maybe one stray
        variants = rng.sample(cluster, k=min(len(cluster), rng.randint(2, 4)))
        answers = [rng.choice(variants) for _ in range(10)]
        if rng.random() < 0.3:
            answers[rng.randrange(10)] = rng.choice(other)
    else:  # noise
        pool = cluster + other
        answers = [rng.choice(pool) for _ in range(10)]
    prediction = decorate(rng, rng.choice(cluster if rng.random() < 0.85 else other))
    annotation = {
        "question_id": question_id,
        "image_id": 1000 + question_id // 3,
        "question_type": rng.choice(QUESTION_TYPES[answer_type]),
        "answer_type": answer_type,
        "multiple_choice_answer": max(answers, key=answers.count),  # the first most frequent one
        "answers": [
            {"answer": text, "answer_confidence": rng.choice(["yes", "maybe", "no"]), "answer_id": k + 1}
            for k, text in enumerate(answers)
        ],
    }
    return annotation, prediction


def run_official(module: types.ModuleType, annotations: list[dict], predictions: dict[int, str], n: int) -> Any:
    """Run `VQAEval(vqa, vqaRes, n).evaluate()` on copies (the evaluation mutates the GT answers)."""
    results = [{"question_id": qid, "answer": answer} for qid, answer in predictions.items()]
    evaluator = module.VQAEval(_Index(copy.deepcopy(annotations)), _Index(results), n=n)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
    return evaluator


def normalization_table(modules: dict[str, types.ModuleType]) -> list[list[str]]:
    """[input, punctuation step, both steps] for every odd string and cluster answer (same at both commits)."""
    strings = list(dict.fromkeys(ODD_STRINGS + [s for groups in CLUSTERS.values() for g in groups for s in g]))
    tables = []
    for module in modules.values():
        evaluator = module.VQAEval(_Index([]), _Index([]))
        punct = [evaluator.processPunctuation(s) for s in strings]
        tables.append([[s, p, evaluator.processDigitArticle(p)] for s, p in zip(strings, punct)])
    if any(table != tables[0] for table in tables):
        raise SystemExit("the two official commits disagree on the normalisation steps")
    return tables[0]


def build(repo: Path, seed: int, count: int) -> dict[str, Any]:
    """The golden document."""
    modules = {version: load_official(repo, commit) for version, commit in COMMITS.items()}
    rng = random.Random(seed)
    questions = [make_question(rng, 5000 + 7 * k) for k in range(count)]
    annotations = [annotation for annotation, _ in questions]
    predictions = {annotation["question_id"]: prediction for annotation, prediction in questions}
    results = {}
    for version, module in modules.items():
        rounded = run_official(module, annotations, predictions, 2)
        exact = run_official(module, annotations, predictions, EXACT_DIGITS)
        results[version] = {
            "commit": COMMITS[version],
            "accuracy": rounded.accuracy,
            "accuracy_unrounded": exact.accuracy,
            "evalQA": {str(qid): value for qid, value in rounded.evalQA.items()},
        }
    return {
        "about": (
            "Generated by scripts/make_vqa_golden.py from GT-Vision-Lab/VQA " + OFFICIAL_FILE + " (official code run "
            f"under Python {platform.python_version()}); seed {seed}. Do not edit by hand."
        ),
        "normalization": normalization_table(modules),
        "annotations": annotations,
        "predictions": [{"question_id": qid, "answer": answer} for qid, answer in predictions.items()],
        "results": results,
    }


def dump(golden: dict[str, Any]) -> str:
    """JSON with one line per list item or dict entry of the top-level members (compact and diff-friendly)."""

    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    def block(value: Any, indent: str) -> str:
        if isinstance(value, list) and value:
            return "[\n" + ",\n".join(indent + " " + one(item) for item in value) + "\n" + indent + "]"
        if isinstance(value, dict) and value and any(isinstance(v, (dict, list)) for v in value.values()):
            items = [f"{indent} {one(key)}: {block(item, indent + ' ')}" for key, item in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + indent + "}"
        return one(value)

    return block(golden, "") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("official_repo", type=Path, help="git clone of GT-Vision-Lab/VQA (work tree or git dir)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "tests/eval/data/vqa_golden.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--questions", type=int, default=300)
    args = parser.parse_args()
    golden = build(args.official_repo, args.seed, args.questions)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dump(golden), encoding="utf-8")
    print(f"wrote {args.out}: {len(golden['annotations'])} questions, {len(golden['normalization'])} strings")


if __name__ == "__main__":
    main()
