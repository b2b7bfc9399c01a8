"""VQA accuracy as the official evaluation computes it (GT-Vision-Lab/VQA `vqaEval.py`, `VQAEval.evaluate`).

Per question: for each of the (usually 10) ground-truth answers, leave it out and count how many of the others
equal the prediction; that subset scores min(1, matches / 3); the question scores the mean over the subsets.
With c matching answers out of 10 this is 0, 0.3, 0.6, 0.9, 1.0 for c = 0, 1, 2, 3, >= 4, as float sums in GT
order: two matches give 0.6, 0.6000000000000001 or 0.5999999999999999 depending on their positions.

Reported values are percentages: round(100 * sum / count, digits) with Python 3 `round` (exact binary halves go to
even: 3.125 -> 3.12, where the Python 2 of the official code gave 3.13), overall and grouped by the annotations'
`question_type` and `answer_type`; per question round(100 * accuracy, digits) (the official `evalQA`).

`question_accuracy` and `summarize_accuracy` take already normalised answers; `vqa_accuracy` applies the official
normalisation of the chosen variant first (`vlkd_cli.eval.vqa_normalize`: "2021" = a013f00, "2016" = 458a8b2).

One official quirk is not reproduced: the official loop leaves a GT answer out by dict inequality
(`item != gtAnsDatum`), so two answer dicts equal in every field (answer, answer_confidence, answer_id) would
both be left out. VQA answer ids are 1..10 per question, so this never happens in real annotations; here the
left-out answer is the one at that position.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vlkd_cli.eval.vqa_normalize import check_version, normalize_question

_LISTED_IDS = 5
"""How many offending question ids an error message names."""


def question_accuracy(prediction: str, gt_answers: Sequence[str]) -> float:
    """Accuracy of one predicted answer against the human answers of a question.

    Args:
        prediction: The predicted answer (normalized).
        gt_answers: The ground-truth answers (normalized), in annotation order.

    Returns:
        A value in [0, 1], computed in the official order of float operations.

    Raises:
        ValueError: `gt_answers` is empty.
    """
    if not gt_answers:
        raise ValueError("VQA accuracy needs at least one ground-truth answer")
    matches = [answer == prediction for answer in gt_answers]
    total_matches = sum(matches)
    accs = [min(1, float(total_matches - int(own)) / 3) for own in matches]
    return float(sum(accs)) / len(accs)


def _percent(values: list[float], digits: int | None) -> float:
    """round(100 * sum / count, digits) as the official code; `digits=None` leaves it unrounded."""
    value = 100 * float(sum(values)) / len(values)
    return value if digits is None else round(value, digits)


def _group(accuracies: Mapping[int, float], annotations: Iterable[Mapping]) -> tuple[list, dict, dict]:
    """Accuracies in annotation order: all, by question type, by answer type (types in first-seen order)."""
    overall: list[float] = []
    per_qtype: dict[str, list[float]] = {}
    per_atype: dict[str, list[float]] = {}
    for ann in annotations:
        qid = ann["question_id"]
        if qid not in accuracies:
            continue
        acc = accuracies[qid]
        overall.append(acc)
        per_qtype.setdefault(ann["question_type"], []).append(acc)
        per_atype.setdefault(ann["answer_type"], []).append(acc)
    if not overall:
        raise ValueError("no annotated question has an accuracy")
    return overall, per_qtype, per_atype


def _report(groups: tuple[list, dict, dict], digits: int | None) -> dict[str, Any]:
    """The official `accuracy` dict of percentages for grouped accuracies."""
    overall, per_qtype, per_atype = groups
    return {
        "overall": _percent(overall, digits),
        "perQuestionType": {k: _percent(v, digits) for k, v in per_qtype.items()},
        "perAnswerType": {k: _percent(v, digits) for k, v in per_atype.items()},
    }


def summarize_accuracy(
    accuracies: Mapping[int, float], annotations: Iterable[Mapping], *, digits: int = 2
) -> dict[str, object]:
    """Overall, per-question-type and per-answer-type accuracy in percent, rounded as the official code.

    Args:
        accuracies: question_id -> accuracy in [0, 1] (from `question_accuracy`).
        annotations: VQA annotations with `question_id`, `question_type`, `answer_type`; only those whose
            question_id is in `accuracies` count, in the order given.
        digits: Decimal places kept by `round`.

    Returns:
        {"overall": float, "perQuestionType": {type: float}, "perAnswerType": {type: float}}.

    Raises:
        ValueError: No annotation has an accuracy.
    """
    return _report(_group(accuracies, annotations), digits)


def _id_list(ids: list[int]) -> str:
    """The count and the first few ids, e.g. `7 (question ids 1, 2, 3, 4, 5, ...)`."""
    shown = ", ".join(str(i) for i in ids[:_LISTED_IDS])
    return f"{len(ids)} (question ids {shown}{', ...' if len(ids) > _LISTED_IDS else ''})"


def _answer_strings(ann: Mapping) -> list[str]:
    """The GT answer strings of an annotation: `answers` holds {"answer": str, ...} objects (or plain strings)."""
    answers = ann.get("answers")
    if not isinstance(answers, Sequence) or isinstance(answers, str) or not answers:
        raise ValueError(f"annotation of question {ann['question_id']} has no list of answers")
    texts = [item.get("answer") if isinstance(item, Mapping) else item for item in answers]
    if not all(isinstance(text, str) for text in texts):
        raise ValueError(f"annotation of question {ann['question_id']}: every answer must be a string")
    return texts


def _check_annotations(predictions: Mapping[int, str], annotations: Sequence[Mapping]) -> None:
    """Refuse annotations without the fields the evaluation reads, duplicate ids and missing predictions."""
    if not annotations:
        raise ValueError("no annotations to evaluate")
    seen: set[int] = set()
    duplicates: list[int] = []
    for index, ann in enumerate(annotations):
        for key in ("question_id", "question_type", "answer_type"):
            if key not in ann:
                raise ValueError(f"annotations[{index}] has no {key!r}")
        if ann["question_id"] in seen:
            duplicates.append(ann["question_id"])
        seen.add(ann["question_id"])
    if duplicates:
        raise ValueError(f"duplicate annotations: {_id_list(duplicates)}")
    missing = [ann["question_id"] for ann in annotations if ann["question_id"] not in predictions]
    if missing:
        raise ValueError(f"no prediction for {_id_list(missing)} of {len(annotations)} annotated questions")


def vqa_accuracy(
    predictions: Mapping[int, str], annotations: Sequence[Mapping], version: str = "2021", *, digits: int = 2
) -> dict[str, Any]:
    """The official VQA accuracy of predicted answers, normalised as the chosen official variant does.

    Args:
        predictions: question_id -> raw predicted answer. Ids without an annotation are ignored.
        annotations: VQA annotations (`question_id`, `question_type`, `answer_type`, `answers`: the human
            answers as {"answer": str, ...} objects, or plain strings); each is scored, in this order (the order
            of the float sums, as the official `evaluate()` over all ids).
        version: "2021" (GT-Vision-Lab/VQA a013f00, HEAD) or "2016" (458a8b2); see `vqa_normalize`.
        digits: Decimal places of the official `round` (its `n`, 2 by default).

    Returns:
        {"overall": float, "perQuestionType": {type: float}, "perAnswerType": {type: float}} in percent rounded
        as the official `VQAEval.accuracy`; "unrounded": the same three without rounding; "per_question":
        {question_id: round(100 * accuracy, digits)} (the official `evalQA`).

    Raises:
        ValueError: Unknown version, no annotations, duplicate annotated ids, an annotation without the fields
            read, or annotated questions without a prediction (the count and the first few ids are named).
    """
    check_version(version)
    _check_annotations(predictions, annotations)
    accuracies: dict[int, float] = {}
    for ann in annotations:
        prediction, gts = normalize_question(predictions[ann["question_id"]], _answer_strings(ann), version)
        accuracies[ann["question_id"]] = question_accuracy(prediction, gts)
    groups = _group(accuracies, annotations)
    return {
        **_report(groups, digits),
        "unrounded": _report(groups, None),
        "per_question": {qid: round(100 * acc, digits) for qid, acc in accuracies.items()},
    }
