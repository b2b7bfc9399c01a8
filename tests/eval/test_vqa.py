"""VQA accuracy: the official leave-one-out formula by hand and against the official loop; `vqa_accuracy` against
numbers produced by the official code (tests/eval/data/vqa_golden.json, scripts/make_vqa_golden.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vlkd_cli.eval.vqa import question_accuracy, summarize_accuracy, vqa_accuracy


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


# --- vqa_accuracy: raw answers, official normalisation, official report ------------------------------------------

GOLDEN = Path(__file__).parent / "data" / "vqa_golden.json"


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


@pytest.mark.parametrize("version", ["2021", "2016"])
def test_golden_side_by_side(golden: dict, version: str) -> None:
    """300 generated questions; expected numbers from the official code at that commit (scripts/make_vqa_golden.py)."""
    predictions = {entry["question_id"]: entry["answer"] for entry in golden["predictions"]}
    official = golden["results"][version]
    out = vqa_accuracy(predictions, golden["annotations"], version)
    assert {key: out[key] for key in ("overall", "perQuestionType", "perAnswerType")} == official["accuracy"]
    assert out["unrounded"] == official["accuracy_unrounded"]  # bit-equal float percentages (official n=30)
    assert {str(qid): value for qid, value in out["per_question"].items()} == official["evalQA"]
    assert list(out["perQuestionType"]) == list(official["accuracy"]["perQuestionType"])  # first-seen order


def test_golden_variants_differ(golden: dict) -> None:
    """The two variants disagree on the golden set (the 2016 one cannot match GT number words or articles)."""
    results = golden["results"]
    assert results["2021"]["accuracy"]["overall"] > results["2016"]["accuracy"]["overall"]
    differing = [qid for qid, acc in results["2021"]["evalQA"].items() if results["2016"]["evalQA"][qid] != acc]
    assert len(differing) > 50


def _ann(qid: int, answers: list[str], qtype: str = "what is", atype: str = "other") -> dict:
    return {
        "question_id": qid,
        "question_type": qtype,
        "answer_type": atype,
        "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k, a in enumerate(answers)],
    }


def test_accuracy_levels_and_float_sums() -> None:
    """c matching answers → 0, 0.3, 0.6, 0.9, 1; the float sum depends on where the matches are (GT order)."""
    assert [question_accuracy("x", ["x"] * c + ["y"] * (10 - c)) for c in range(6)] == [0.0, 0.3, 0.6, 0.9, 1.0, 1.0]
    assert question_accuracy("x", ["y"] * 8 + ["x"] * 2) == 0.5999999999999999
    assert question_accuracy("x", ["y", "y", "y", "x", "y", "y", "x", "y", "y", "y"]) == 0.6000000000000001
    assert question_accuracy("x", ["x", "x"] + ["y"] * 7 + ["x"]) == 0.8999999999999998
    anns = [_ann(1, ["y"] * 8 + ["x"] * 2), _ann(2, ["x", "x"] + ["y"] * 7 + ["x"])]
    out = vqa_accuracy({1: "x", 2: "x"}, anns)
    assert out["per_question"] == {1: 60.0, 2: 90.0}
    assert out["unrounded"]["overall"] == 100 * (0.5999999999999999 + 0.8999999999999998) / 2 == 74.99999999999997
    assert out["overall"] == 75.0


def test_per_type_aggregation_and_python3_rounding() -> None:
    """32 questions, one right: 100 * 1 / 32 = 3.125 exactly, which Python 3 rounds to 3.12 (Python 2: 3.13)."""
    anns = [_ann(k, ["yes"] * 10, "is the" if k < 16 else "is this", "yes/no") for k in range(32)]
    anns += [_ann(100, ["2", "two"] * 5, "how many", "number"), _ann(101, ["3", "4"] * 5, "how many", "number")]
    predictions = {k: "no" for k in range(32)} | {0: "yes", 100: "Two", 101: "5"}
    out = vqa_accuracy(predictions, anns)
    assert out["perAnswerType"]["yes/no"] == 3.12
    assert out["unrounded"]["perAnswerType"]["yes/no"] == 3.125
    assert out["perQuestionType"] == {"is the": 6.25, "is this": 0.0, "how many": 50.0}
    assert out["perAnswerType"]["number"] == 50.0
    assert out["overall"] == round(100 * 2.0 / 34, 2) == 5.88
    assert vqa_accuracy(predictions, anns, digits=1)["perAnswerType"]["yes/no"] == 3.1


def test_identical_gt_not_normalised_in_2021_only() -> None:
    anns = [_ann(1, ["yes"] * 10), _ann(2, ["two"] * 10), _ann(3, ["a dog", "dog"] * 5)]
    predictions = {1: "Yes", 2: "2", 3: "The dog!"}
    assert vqa_accuracy(predictions, anns, "2021")["per_question"] == {1: 0.0, 2: 0.0, 3: 100.0}
    assert vqa_accuracy(predictions, anns, "2016")["per_question"] == {1: 100.0, 2: 0.0, 3: 100.0}
    assert vqa_accuracy({1: "yes", 2: "two", 3: "dog"}, anns, "2016")["per_question"] == {1: 100.0, 2: 0.0, 3: 100.0}


def test_plain_string_answers_and_extra_predictions() -> None:
    anns = [{"question_id": 1, "question_type": "q", "answer_type": "other", "answers": ["red"] * 10}]
    out = vqa_accuracy({1: "red", 2: "ignored"}, anns)
    assert out["overall"] == 100.0
    assert set(out["per_question"]) == {1}


def test_refusals() -> None:
    anns = [_ann(k, ["x"] * 10) for k in range(1, 9)]
    with pytest.raises(ValueError, match=r"no prediction for 7 \(question ids 2, 3, 4, 5, 6, \.\.\.\) of 8"):
        vqa_accuracy({1: "x"}, anns)
    with pytest.raises(ValueError, match=r"no prediction for 1 \(question ids 8\)"):
        vqa_accuracy({k: "x" for k in range(1, 8)}, anns)
    with pytest.raises(ValueError, match="unknown VQA evaluation version"):
        vqa_accuracy({k: "x" for k in range(1, 9)}, anns, "2019")
    with pytest.raises(ValueError, match=r"duplicate annotations: 1 \(question ids 3\)"):
        vqa_accuracy({3: "x"}, [_ann(3, ["x"] * 10), _ann(3, ["y"] * 10)])
    with pytest.raises(ValueError, match="no annotations"):
        vqa_accuracy({1: "x"}, [])
    with pytest.raises(ValueError, match="'answer_type'"):
        vqa_accuracy({1: "x"}, [{"question_id": 1, "question_type": "q", "answers": ["x"]}])
    with pytest.raises(ValueError, match="no list of answers"):
        vqa_accuracy({1: "x"}, [{"question_id": 1, "question_type": "q", "answer_type": "a", "answers": []}])
