"""VQA results files in the official format: a JSON list of `{"question_id": int, "answer": str}` objects.

The format read by `VQA.loadRes` of GT-Vision-Lab/VQA (`PythonHelperTools/vqaTools/vqa.py`) and by the EvalAI
server. The official loader asserts that the set of result ids equals the annotation's (no missing, no extra) and
lets a later duplicate override an earlier one; here duplicates are refused, and missing or extra ids are named.
Extra keys in an entry are ignored, as the official loader does.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from vlkd_cli.artifacts.atomic import write_text_atomic
from vlkd_cli.errors import InputError
from vlkd_cli.jsonfile import read_json

_LISTED_IDS = 5
"""How many offending question ids an error message names."""

_FORMAT = 'a JSON list of {"question_id": int, "answer": str} objects'


def _short(value: Any) -> str:
    """A short description of a JSON value for error messages."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _ids(ids: list[int]) -> str:
    """The count and the first few ids, e.g. `7 (question ids 1, 2, 3, 4, 5, ...)`."""
    shown = ", ".join(str(i) for i in ids[:_LISTED_IDS])
    return f"{len(ids)} (question ids {shown}{', ...' if len(ids) > _LISTED_IDS else ''})"


def _parse_entry(entry: Any, index: int, path: Path) -> tuple[int, str]:
    """Validate one results entry.

    Args:
        entry: The parsed JSON value.
        index: Its position in the list, for errors.
        path: The file, for errors.

    Returns:
        (question_id, answer).

    Raises:
        InputError: Not an object, a missing key, a question id that is not an integer, an answer not a string.
    """
    if not isinstance(entry, dict):
        raise InputError(f"results[{index}] must be an object, found {_short(entry)} (expected {_FORMAT})", path)
    for key in ("question_id", "answer"):
        if key not in entry:
            raise InputError(f"results[{index}] has no {key!r} (expected {_FORMAT})", path)
    question_id, answer = entry["question_id"], entry["answer"]
    if isinstance(question_id, bool) or not isinstance(question_id, int):
        raise InputError(f"results[{index}] 'question_id' must be an integer, found {_short(question_id)}", path)
    if not isinstance(answer, str):
        found = _short(answer)
        raise InputError(f"results[{index}] (question {question_id}) 'answer' must be a string, found {found}", path)
    return question_id, answer


def _check_coverage(answers: Mapping[int, str], question_ids: Collection[int], path: Path) -> None:
    """Refuse results whose ids differ from the expected set, naming both kinds of difference.

    Raises:
        InputError: Missing and/or extra question ids (count and first few of each).
    """
    expected = set(question_ids)
    missing = [qid for qid in dict.fromkeys(question_ids) if qid not in answers]
    extra = [qid for qid in answers if qid not in expected]
    problems = []
    if missing:
        problems.append(f"no answer for {_ids(missing)} of the {len(expected)} questions")
    if extra:
        problems.append(f"answers for {_ids(extra)} not among the questions")
    if problems:
        raise InputError("results do not match the questions: " + "; ".join(problems), path)


def read_vqa_results(path: Path, question_ids: Collection[int] | None = None) -> dict[int, str]:
    """Read an official VQA results file.

    Args:
        path: The JSON file.
        question_ids: When given, the results must answer exactly these questions.

    Returns:
        question_id -> answer, in file order.

    Raises:
        UsageError: The file does not exist or is a directory.
        InputError: Invalid JSON, not a list, a malformed entry, duplicate question ids, or (with
            `question_ids`) missing or extra ids; the message names the count and the first few ids.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError(f"expected {_FORMAT}, found a JSON {type(data).__name__}", path)
    answers: dict[int, str] = {}
    duplicates: list[int] = []
    for index, entry in enumerate(data):
        question_id, answer = _parse_entry(entry, index, path)
        if question_id in answers and question_id not in duplicates:
            duplicates.append(question_id)
        answers[question_id] = answer
    if duplicates:
        raise InputError(f"duplicate answers for {_ids(duplicates)}", path)
    if question_ids is not None:
        _check_coverage(answers, question_ids, path)
    return answers


def format_vqa_results(answers: Mapping[int, str]) -> str:
    """The official results JSON for `answers`, one entry per line, question ids ascending.

    Raises:
        TypeError: A question id that is not an integer or an answer that is not a string.
    """
    for question_id, answer in answers.items():
        if isinstance(question_id, bool) or not isinstance(question_id, int) or not isinstance(answer, str):
            raise TypeError(f"VQA results need int question ids and str answers, got {question_id!r}: {answer!r}")
    entries = [json.dumps({"question_id": qid, "answer": answers[qid]}, ensure_ascii=False) for qid in sorted(answers)]
    return "[\n" + ",\n".join(entries) + "\n]\n" if entries else "[]\n"


def write_vqa_results(path: Path, answers: Mapping[int, str]) -> None:
    """Write an official VQA results file atomically (see `format_vqa_results`).

    Args:
        path: The JSON file to write (replaced only by a complete new file).
        answers: question_id -> answer.

    Raises:
        TypeError: As `format_vqa_results`.
    """
    write_text_atomic(Path(path), format_vqa_results(answers))
