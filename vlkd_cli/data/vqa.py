"""Readers of VQA v2 files: questions (`v2_OpenEnded_mscoco_val2014_questions.json`) and annotations
(`v2_mscoco_val2014_annotations.json`).

Questions: `{"questions": [{"image_id", "question", "question_id"}], "info", "task_type", ...}`.
Annotations: `{"annotations": [{"question_id", "image_id", "question_type", "answer_type",
"multiple_choice_answer", "answers": [{"answer", "answer_confidence", "answer_id"}] x 10}], ...}`.
Extra top-level keys are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlkd_cli.data.coco import expect_dict, expect_int, expect_list, expect_str, read_json
from vlkd_cli.errors import InputError

ANSWERS_PER_QUESTION = 10
"""Human answers per question in VQA v2 (and v1); the official accuracy is defined over exactly these 10."""

_LISTED_IDS = 5


@dataclass
class VqaQuestion:
    """One VQA question.

    Attributes:
        question_id: Its id.
        image_id: The COCO image it is about.
        question: The question text.
    """

    question_id: int
    image_id: int
    question: str


@dataclass
class VqaAnnotation:
    """The ground truth of one VQA question.

    Attributes:
        question_id: The question's id.
        image_id: The COCO image.
        question_type: E.g. `what color is the`.
        answer_type: `yes/no`, `number` or `other`.
        multiple_choice_answer: The most frequent answer.
        answers: The 10 human answers (the `answer` strings, in file order).
    """

    question_id: int
    image_id: int
    question_type: str
    answer_type: str
    multiple_choice_answer: str
    answers: list[str]


def is_vqa_questions(obj: Any) -> bool:
    """Tell whether a parsed JSON document looks like a VQA questions file.

    Args:
        obj: The parsed JSON.

    Returns:
        True when it is an object with a `questions` list.
    """
    return isinstance(obj, dict) and isinstance(obj.get("questions"), list)


def is_vqa_annotations(obj: Any) -> bool:
    """Tell whether a parsed JSON document looks like a VQA annotations file.

    Args:
        obj: The parsed JSON.

    Returns:
        True when it is an object without `images` whose `annotations` list is empty or starts with an object
        having `question_id`.
    """
    if not isinstance(obj, dict) or "images" in obj or not isinstance(obj.get("annotations"), list):
        return False
    annotations = obj["annotations"]
    return not annotations or (isinstance(annotations[0], dict) and "question_id" in annotations[0])


def load_vqa_questions(path: Path) -> dict[int, VqaQuestion]:
    """Read a VQA questions file.

    Args:
        path: The file.

    Returns:
        Question id → question, in file order.

    Raises:
        UsageError: The file does not exist.
        InputError: Invalid JSON or layout, a duplicate question id, an empty question.
    """
    return parse_vqa_questions(read_json(path), Path(path))


def parse_vqa_questions(data: Any, path: Path) -> dict[int, VqaQuestion]:
    """Validate an already parsed VQA questions document (see `load_vqa_questions`).

    Args:
        data: The parsed JSON.
        path: The file it came from, for errors.

    Returns:
        Question id → question, in file order.

    Raises:
        InputError: As `load_vqa_questions`.
    """
    data = expect_dict(data, "the top level of a VQA questions file", path)
    questions: dict[int, VqaQuestion] = {}
    for index, entry in enumerate(expect_list(data, "questions", path)):
        entry = expect_dict(entry, f"questions[{index}]", path)
        question_id = expect_int(entry, "question_id", f"questions[{index}]", path)
        if question_id in questions:
            raise InputError(f"duplicate question id {question_id}", path=path)
        name = f"question {question_id}"
        image_id = expect_int(entry, "image_id", name, path)
        text = expect_str(entry, "question", name, path, non_empty=True)
        questions[question_id] = VqaQuestion(question_id, image_id, text)
    return questions


def load_vqa_annotations(path: Path, questions: dict[int, VqaQuestion] | None = None) -> dict[int, VqaAnnotation]:
    """Read a VQA annotations file, optionally checking it against its questions.

    Args:
        path: The file.
        questions: The questions (from `load_vqa_questions`); when given, every annotation must belong to a
            question with the same image, and every question must have an annotation.

    Returns:
        Question id → annotation, in file order.

    Raises:
        UsageError: The file does not exist.
        InputError: Invalid JSON or layout, a duplicate question id, not exactly 10 answers, an annotation of an
            unknown question, an image id disagreeing with its question's, questions without annotation.
    """
    return parse_vqa_annotations(read_json(path), Path(path), questions)


def parse_vqa_annotations(
    data: Any, path: Path, questions: dict[int, VqaQuestion] | None = None
) -> dict[int, VqaAnnotation]:
    """Validate an already parsed VQA annotations document (see `load_vqa_annotations`).

    Args:
        data: The parsed JSON.
        path: The file it came from, for errors.
        questions: As `load_vqa_annotations`.

    Returns:
        Question id → annotation, in file order.

    Raises:
        InputError: As `load_vqa_annotations`.
    """
    data = expect_dict(data, "the top level of a VQA annotations file", path)
    annotations: dict[int, VqaAnnotation] = {}
    for index, entry in enumerate(expect_list(data, "annotations", path)):
        annotation = _parse_annotation(expect_dict(entry, f"annotations[{index}]", path), index, path)
        if annotation.question_id in annotations:
            raise InputError(f"duplicate annotation for question id {annotation.question_id}", path=path)
        if questions is not None:
            _check_against_question(annotation, questions, path)
        annotations[annotation.question_id] = annotation
    if questions is not None:
        _check_coverage(annotations, questions, path)
    return annotations


def _parse_annotation(entry: dict[str, Any], index: int, path: Path) -> VqaAnnotation:
    """Validate one annotation object.

    Args:
        entry: The annotation object.
        index: Its position, for errors.
        path: The file, for errors.

    Returns:
        The annotation.

    Raises:
        InputError: A missing or malformed field, or not exactly 10 answers.
    """
    question_id = expect_int(entry, "question_id", f"annotations[{index}]", path)
    name = f"annotation of question {question_id}"
    answers = expect_list(entry, "answers", path, what=name)
    if len(answers) != ANSWERS_PER_QUESTION:
        raise InputError(f"{name} has {len(answers)} answers, VQA v2 has {ANSWERS_PER_QUESTION}", path=path)
    texts = [
        expect_str(expect_dict(answer, f"{name} answers[{k}]", path), "answer", f"{name} answers[{k}]", path)
        for k, answer in enumerate(answers)
    ]
    return VqaAnnotation(
        question_id=question_id,
        image_id=expect_int(entry, "image_id", name, path),
        question_type=expect_str(entry, "question_type", name, path),
        answer_type=expect_str(entry, "answer_type", name, path),
        multiple_choice_answer=expect_str(entry, "multiple_choice_answer", name, path),
        answers=texts,
    )


def _check_against_question(annotation: VqaAnnotation, questions: dict[int, VqaQuestion], path: Path) -> None:
    """Check that an annotation belongs to a known question about the same image.

    Args:
        annotation: The annotation.
        questions: The questions.
        path: The annotations file, for errors.

    Raises:
        InputError: Unknown question id, or a different image id.
    """
    question = questions.get(annotation.question_id)
    if question is None:
        raise InputError(f"annotation of question {annotation.question_id}: no such question id", path=path)
    if question.image_id != annotation.image_id:
        raise InputError(
            f"annotation of question {annotation.question_id} has image id {annotation.image_id}, "
            f"the question has image id {question.image_id}",
            path=path,
        )


def _check_coverage(annotations: dict[int, VqaAnnotation], questions: dict[int, VqaQuestion], path: Path) -> None:
    """Check that every question has an annotation.

    Args:
        annotations: The annotations, by question id.
        questions: The questions.
        path: The annotations file, for errors.

    Raises:
        InputError: Naming how many questions lack an annotation and the first few ids.
    """
    missing = [question_id for question_id in questions if question_id not in annotations]
    if missing:
        first = ", ".join(str(question_id) for question_id in missing[:_LISTED_IDS])
        more = ", ..." if len(missing) > _LISTED_IDS else ""
        raise InputError(
            f"{len(missing)} of {len(questions)} questions have no annotation (question ids {first}{more})",
            path=path,
        )
