"""Tests of `vlkd_cli.data.vqa`: VQA v2 questions and annotations, and their cross-checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vlkd_cli.data.vqa import (
    VqaAnnotation,
    VqaQuestion,
    is_vqa_annotations,
    is_vqa_questions,
    load_vqa_annotations,
    load_vqa_questions,
)
from vlkd_cli.errors import InputError, UsageError


def _write(path: Path, data: Any) -> Path:
    """Write JSON and return the path."""
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _questions() -> dict[str, Any]:
    """A questions file in the official layout."""
    return {
        "info": {"description": "VQA v2"},
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "license": {},
        "data_subtype": "val2014",
        "questions": [
            {"image_id": 42, "question": "What color is the bus?", "question_id": 42000},
            {"image_id": 42, "question": "Is it raining?", "question_id": 42001},
            {"image_id": 73, "question": "How many dogs?", "question_id": 73000},
        ],
    }


def _annotation(question_id: int, image_id: int, answer: str, answer_type: str = "other") -> dict[str, Any]:
    """One annotation with 10 answers in the official layout."""
    return {
        "question_id": question_id,
        "image_id": image_id,
        "question_type": "what color is the",
        "answer_type": answer_type,
        "multiple_choice_answer": answer,
        "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": k + 1} for k in range(10)],
    }


def _annotations() -> dict[str, Any]:
    """The annotations of `_questions`."""
    return {
        "info": {},
        "license": {},
        "data_subtype": "val2014",
        "annotations": [
            _annotation(42000, 42, "red"),
            _annotation(42001, 42, "no", "yes/no"),
            _annotation(73000, 73, "2", "number"),
        ],
    }


def test_questions_are_read_by_id(tmp_path: Path) -> None:
    questions = load_vqa_questions(_write(tmp_path / "q.json", _questions()))
    assert list(questions) == [42000, 42001, 73000]
    assert questions[73000] == VqaQuestion(73000, 73, "How many dogs?")


def test_annotations_are_read_and_checked_against_questions(tmp_path: Path) -> None:
    questions = load_vqa_questions(_write(tmp_path / "q.json", _questions()))
    annotations = load_vqa_annotations(_write(tmp_path / "a.json", _annotations()), questions)
    assert annotations[42001] == VqaAnnotation(42001, 42, "what color is the", "yes/no", "no", ["no"] * 10)
    assert list(annotations) == [42000, 42001, 73000]


def test_annotations_alone_need_no_questions(tmp_path: Path) -> None:
    data = _annotations()
    data["annotations"].pop()
    assert list(load_vqa_annotations(_write(tmp_path / "a.json", data))) == [42000, 42001]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["questions"][1].update(question_id=42000), "duplicate question id 42000"),
        (lambda d: d["questions"][1].update(question=" "), "question 42001 has an empty 'question'"),
        (lambda d: d["questions"][1].update(image_id=None), "question 42001 'image_id' must be an integer"),
        (lambda d: d.pop("questions"), "has no 'questions' list"),
    ],
)
def test_question_errors(tmp_path: Path, mutate: Any, message: str) -> None:
    data = _questions()
    mutate(data)
    with pytest.raises(InputError, match=message) as caught:
        load_vqa_questions(_write(tmp_path / "q.json", data))
    assert caught.value.exit_code == 3


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["annotations"][1].update(question_id=42000), "duplicate annotation for question id 42000"),
        (lambda d: d["annotations"][1].update(question_id=5), "annotation of question 5: no such question id"),
        (
            lambda d: d["annotations"][2].update(image_id=42),
            "annotation of question 73000 has image id 42, the question has image id 73",
        ),
        (lambda d: d["annotations"][2]["answers"].pop(), "annotation of question 73000 has 9 answers, VQA v2 has 10"),
        (lambda d: d["annotations"][2]["answers"][3].pop("answer"), "question 73000 answers\\[3\\] has no 'answer'"),
        (lambda d: d["annotations"][0].pop("answer_type"), "annotation of question 42000 has no 'answer_type'"),
    ],
)
def test_annotation_errors(tmp_path: Path, mutate: Any, message: str) -> None:
    questions = load_vqa_questions(_write(tmp_path / "q.json", _questions()))
    data = _annotations()
    mutate(data)
    path = _write(tmp_path / "a.json", data)
    with pytest.raises(InputError, match=message) as caught:
        load_vqa_annotations(path, questions)
    assert caught.value.exit_code == 3
    assert str(caught.value).startswith(f"{path}: ")


def test_questions_without_annotation_are_counted_and_named(tmp_path: Path) -> None:
    data = _questions()
    data["questions"] += [{"image_id": 9, "question": f"Q{k}?", "question_id": 900 + k} for k in range(6)]
    questions = load_vqa_questions(_write(tmp_path / "q.json", data))
    with pytest.raises(InputError, match="6 of 9 questions have no annotation \\(question ids 900, 901, 902, 903, 904, "
                       "\\.\\.\\.\\)"):
        load_vqa_annotations(_write(tmp_path / "a.json", _annotations()), questions)


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        load_vqa_questions(tmp_path / "nope.json")
    assert caught.value.exit_code == 2


def test_format_detection() -> None:
    assert is_vqa_questions(_questions()) and not is_vqa_annotations(_questions())
    assert is_vqa_annotations(_annotations()) and not is_vqa_questions(_annotations())
    assert not is_vqa_annotations({"images": [], "annotations": []})
