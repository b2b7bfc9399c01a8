"""VQA accuracy as the official evaluation computes it (GT-Vision-Lab/VQA `vqaEval.py`), on normalized answers.

Per question: for each of the (usually 10) ground-truth answers, leave it out and count how many of the others
equal the prediction; that subset scores min(1, matches / 3); the question scores the mean over the subsets.
With c matching answers out of 10 this is 0, 0.3, 0.6, 0.9, 1.0 for c = 0, 1, 2, 3, >= 4.
The official answer normalization (punctuation, digits, articles) is not applied here: pass normalized strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


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


def _percent(values: list[float], digits: int) -> float:
    """round(100 * sum / count, digits), as the official code."""
    return round(100 * float(sum(values)) / len(values), digits)


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
    return {
        "overall": _percent(overall, digits),
        "perQuestionType": {k: _percent(v, digits) for k, v in per_qtype.items()},
        "perAnswerType": {k: _percent(v, digits) for k, v in per_atype.items()},
    }
