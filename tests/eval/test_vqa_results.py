"""Official VQA results files: round trip, and every malformed input → InputError (exit 3) naming the ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.eval.vqa_results import format_vqa_results, read_vqa_results, write_vqa_results


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_write_then_read(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results.json"
    answers = {30: "yes", 2: "two dogs", 11: "école\n", 7: ""}
    write_vqa_results(path, answers)
    assert json.loads(path.read_text(encoding="utf-8")) == [
        {"question_id": 2, "answer": "two dogs"},
        {"question_id": 7, "answer": ""},
        {"question_id": 11, "answer": "école\n"},
        {"question_id": 30, "answer": "yes"},
    ]
    assert read_vqa_results(path) == answers
    assert read_vqa_results(path, {2, 7, 11, 30}) == answers
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]  # no temp file left behind


def test_format() -> None:
    assert (
        format_vqa_results({2: "b", 1: "a"})
        == '[\n{"question_id": 1, "answer": "a"},\n{"question_id": 2, "answer": "b"}\n]\n'
    )
    assert format_vqa_results({}) == "[]\n"
    with pytest.raises(TypeError):
        format_vqa_results({1: 2})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        format_vqa_results({"1": "a"})  # type: ignore[dict-item]


def test_extra_keys_ignored(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"question_id": 1, "answer": "a", "image_id": 9, "score": 0.5}])
    assert read_vqa_results(path, [1]) == {1: "a"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"question_id": 1, "answer": "a"}, "expected a JSON list .* found a JSON dict"),
        ("a", "found a JSON str"),
        ([{"question_id": 1, "answer": "a"}, ["x"]], r"results\[1\] must be an object, found list"),
        ([{"answer": "a"}], r"results\[0\] has no 'question_id'"),
        ([{"question_id": 1}], r"results\[0\] has no 'answer'"),
        ([{"question_id": "1", "answer": "a"}], r"'question_id' must be an integer, found \"1\""),
        ([{"question_id": 1.0, "answer": "a"}], r"'question_id' must be an integer, found 1.0"),
        ([{"question_id": True, "answer": "a"}], r"'question_id' must be an integer, found true"),
        ([{"question_id": 5, "answer": 3}], r"results\[0\] \(question 5\) 'answer' must be a string, found 3"),
        ([{"question_id": 5, "answer": None}], "must be a string, found null"),
        (
            [{"question_id": q, "answer": "a"} for q in (7, 9, 7, 3, 9, 7)],
            r"duplicate answers for 2 \(question ids 7, 9\)",
        ),
    ],
)
def test_malformed(tmp_path: Path, data: object, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(InputError, match=message) as info:
        read_vqa_results(path)
    assert info.value.exit_code == 3
    assert str(info.value).startswith(f"{path}: ")


def test_missing_and_extra_ids(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"question_id": q, "answer": "a"} for q in (1, 2, 3, 50, 51)])
    with pytest.raises(InputError, match=r"no answer for 2 \(question ids 4, 5\) of the 7 questions$"):
        read_vqa_results(path, [1, 2, 3, 4, 5, 50, 51])
    with pytest.raises(InputError, match=r"answers for 2 \(question ids 50, 51\) not among the questions$"):
        read_vqa_results(path, [1, 2, 3])
    with pytest.raises(
        InputError, match=r"no answer for 1 \(question ids 4\) .*; answers for 2 \(question ids 50, 51\)"
    ):
        read_vqa_results(path, [1, 2, 3, 4])
    with pytest.raises(InputError, match=r"no answer for 8 \(question ids 10, 11, 12, 13, 14, \.\.\.\) of the 13"):
        read_vqa_results(path, [1, 2, 3, 50, 51, *range(10, 18)])


def test_bad_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[{"question_id": 1,', encoding="utf-8")
    with pytest.raises(InputError, match="invalid JSON"):
        read_vqa_results(broken)
    with pytest.raises(UsageError, match="does not exist"):
        read_vqa_results(tmp_path / "absent.json")
