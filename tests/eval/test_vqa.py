"""VQA accuracy: the official leave-one-out formula, by hand and against a copy of the official loop."""

from __future__ import annotations

import numpy as np
import pytest

from vlkd_cli.eval.vqa import question_accuracy, summarize_accuracy


def _official(prediction: str, answers: list[str]) -> float:
    """The loop of GT-Vision-Lab/VQA vqaEval.py (answers as dicts, compared by identity of the whole dict)."""
    gts = [{"answer": a, "answer_id": k + 1} for k, a in enumerate(answers)]
    gt_acc = []
    for gt_datum in gts:
        others = [item for item in gts if item != gt_datum]
        matching = [item for item in others if item["answer"] == prediction]
        gt_acc.append(min(1, float(len(matching)) / 3))
    return float(sum(gt_acc)) / len(gt_acc)


@pytest.mark.parametrize(
    ("matches", "expected"),
    [
        # c of the 10 answers match. Leaving out a matching answer leaves c-1 matches, leaving out another leaves c:
        (0, 0.0),  # every subset: 0/3
        (1, (1 * 0.0 + 9 * (1 / 3)) / 10),  # = 0.3
        (2, (2 * (1 / 3) + 8 * (2 / 3)) / 10),  # = 0.6
        (3, (3 * (2 / 3) + 7 * 1.0) / 10),  # = 0.9
        (4, (4 * 1.0 + 6 * 1.0) / 10),  # = 1.0 (3 left when a match is left out)
        (10, 1.0),
    ],
)
def test_hand_computed(matches: int, expected: float) -> None:
    answers = ["2"] * matches + ["3"] * (10 - matches)
    assert question_accuracy("2", answers) == pytest.approx(expected, abs=1e-12)
    assert question_accuracy("2", answers) == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.0, 1.0][min(matches, 4)], abs=1e-12)


def test_order_does_not_matter_and_no_match() -> None:
    answers = ["yes", "no", "yes", "no", "yes", "yes", "no", "no", "no", "no"]
    assert question_accuracy("yes", answers) == pytest.approx(1.0)
    assert question_accuracy("maybe", answers) == 0.0


def test_bit_equal_to_official_loop() -> None:
    rng = np.random.default_rng(0)
    vocab = ["yes", "no", "1", "2", "red", "blue"]
    for _ in range(500):
        count = int(rng.integers(1, 12))
        answers = [vocab[int(i)] for i in rng.integers(len(vocab), size=count)]
        prediction = vocab[int(rng.integers(len(vocab)))]
        assert question_accuracy(prediction, answers) == _official(prediction, answers)


def test_empty_answers_refused() -> None:
    with pytest.raises(ValueError):
        question_accuracy("yes", [])


def test_summarize_rounds_like_official() -> None:
    anns = [
        {"question_id": 1, "question_type": "how many", "answer_type": "number"},
        {"question_id": 2, "question_type": "how many", "answer_type": "number"},
        {"question_id": 3, "question_type": "is the", "answer_type": "yes/no"},
        {"question_id": 4, "question_type": "is the", "answer_type": "yes/no"},  # no accuracy: ignored
    ]
    accs = {1: 1.0, 2: 0.3, 3: 0.6}
    out = summarize_accuracy(accs, anns)
    assert out["overall"] == round(100 * 1.9 / 3, 2) == 63.33
    assert out["perQuestionType"] == {"how many": 65.0, "is the": 60.0}
    assert out["perAnswerType"] == {"number": 65.0, "yes/no": 60.0}
    with pytest.raises(ValueError):
        summarize_accuracy({}, anns)
