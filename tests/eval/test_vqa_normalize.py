"""Official VQA answer normalisation, both variants (GT-Vision-Lab/VQA vqaEval.py at a013f00 and 458a8b2).

Every expected value below was obtained by running the official `VQAEval.processPunctuation` /
`processDigitArticle` (Python 3, print statements turned into calls; scripts/make_vqa_golden.py loads it the
same way), not by reasoning about the rules.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlkd_cli.eval.vqa_normalize import (
    CONTRACTIONS,
    PERIOD_LIMIT,
    normalize_question,
    process_answer,
    process_digits_articles,
    process_punctuation,
)

GOLDEN = Path(__file__).parent / "data" / "vqa_golden.json"

# input → (punctuation step, punctuation then digit/article step), from the official code.
CASES = [
    # punctuation touching a space is deleted, otherwise it becomes a space
    ("Yes!", "Yes ", "yes"),
    ("why ?", "why ", "why"),
    ("t-shirt", "t shirt", "t shirt"),
    ("t - shirt", "t  shirt", "t shirt"),
    ("well -done", "well done", "well done"),
    ("black/white", "black white", "black white"),
    ("n\\a", "n a", "n"),  # and then the article "a" goes
    ("(left)", " left ", "left"),
    ('"quoted"', " quoted ", "quoted"),
    ("snake_case", "snake case", "snake case"),
    ("me@home", "me home", "me home"),
    ("`tick`", " tick ", "tick"),
    ("No, it's not", "No it's not", "no it's not"),
    # not in the list: apostrophe, colon, * # $ % & ~ ^ |
    ("a:b", "a:b", "a:b"),
    ("50%", "50%", "50%"),
    ("a*b#c$d%e&f~g^h|i", "a*b#c$d%e&f~g^h|i", "a*b#c$d%e&f~g^h|i"),
    # digit , digit anywhere: every punctuation character is deleted (not only the comma)
    ("3,5", "35", "35"),
    ("1,000", "1000", "1000"),
    ("3,5-x/y", "35xy", "35xy"),
    ("1,2 and a-b", "12 and ab", "12 and ab"),
    ("3, 5", "3 5", "3 5"),  # no digit,digit: ", " → the comma is deleted
    ("1, 000 people", "1 000 people", "1 000 people"),
    ("a,b", "a b", "b"),
    # periods: deleted unless a digit follows
    ("3.5", "3.5", "3.5"),
    (".5", ".5", ".5"),
    ("5.", "5", "5"),
    ("1.1.", "1.1", "1.1"),
    ("a.m.", "am", "am"),
    ("U.S.A.", "USA", "usa"),
    ("...", "", ""),
    # ... but only the first 32 of them (re.UNICODE == 32 passed as `count`)
    ("." * 40 + "x", "." * 8 + "x", "." * 8 + "x"),
    ("a." * 34, "a" * 33 + ".a.", "a" * 33 + ".a."),
    # number words (whole tokens), after lower-casing
    ("two", "two", "2"),
    ("Two dogs", "Two dogs", "2 dogs"),
    ("none", "none", "0"),
    ("None of them", "None of them", "0 of them"),
    ("Ten Ten", "Ten Ten", "10 10"),
    ("one two three", "one two three", "1 2 3"),
    ("eleven", "eleven", "eleven"),
    # articles
    ("a dog", "a dog", "dog"),
    ("The Dog.", "The Dog", "dog"),
    ("an apple", "an apple", "apple"),
    ("A", "A", ""),
    ("the the", "the the", ""),
    # contractions (keys with capitals can never match after lower-casing)
    ("dont", "dont", "don't"),
    ("isnt", "isnt", "isn't"),
    ("Whats", "Whats", "what's"),
    ("whats up", "whats up", "what's up"),
    ("twas", "twas", "'twas"),
    ("yall'll", "yall'll", "y'all'll"),
    ("oclock", "oclock", "o'clock"),
    ("somebody'd", "somebody'd", "somebodyd"),
    ("Im", "Im", "im"),
    ("Ive", "Ive", "ive"),
    ("don't", "don't", "don't"),
    # whitespace: the digit/article step splits and rejoins
    ("  two  ", "  two  ", "2"),
    ("a\tb", "a\tb", "b"),
]


@pytest.mark.parametrize(("text", "punct", "full"), CASES)
def test_official_cases(text: str, punct: str, full: str) -> None:
    assert process_punctuation(text) == punct
    assert process_digits_articles(punct) == full
    assert process_answer(text) == full


def test_period_cap_is_32() -> None:
    assert PERIOD_LIMIT == 32
    assert process_punctuation("." * 32) == ""
    assert process_punctuation("." * 33) == "."


def test_contractions_table() -> None:
    assert len(CONTRACTIONS) == 120  # the official dict literal has 120 distinct keys
    unreachable = [key for key in CONTRACTIONS if key != key.lower()]
    assert unreachable == ["Id've", "I'dve", "Im", "Ive"]


def test_golden_strings() -> None:
    """~200 odd strings, normalised by the official code at both commits (identical there)."""
    table = json.loads(GOLDEN.read_text(encoding="utf-8"))["normalization"]
    assert len(table) > 150
    for text, punct, full in table:
        assert (process_punctuation(text), process_answer(text)) == (punct, full), text


# (prediction, 10 GT answers, version) → (normalised prediction, normalised GT answers). The GT side is what the
# official `evaluate()` leaves in the annotation it mutates, and the official evalQA of each case equals the
# accuracy of these normalised strings (checked by running both commits).
TEN_YES = ["yes"] * 10
MIXED = ["Two", "2", "two!", "2", "2", "a two", "2", "2", "two", "2"]


@pytest.mark.parametrize(
    ("prediction", "gts", "version", "expected_prediction", "expected_gts"),
    [
        # 2021: GT all identical → only \n/\t → space and strip, no other normalisation, on both sides
        ("Yes", TEN_YES, "2021", "Yes", TEN_YES),
        ("yes!", TEN_YES, "2021", "yes!", TEN_YES),
        ("\tyes\n", TEN_YES, "2021", "yes", TEN_YES),
        ("two", ["2"] * 10, "2021", "two", ["2"] * 10),
        (" a\tb ", ["x\ty "] * 10, "2021", "a b", ["x y"] * 10),
        # 2021: identical after stripping counts as identical
        ("Yes", ["yes", " yes", "yes\n"] + ["yes"] * 7, "2021", "Yes", TEN_YES),
        # 2021: GT disagree → both sides fully normalised
        ("Two.", MIXED, "2021", "2", ["2", "2", "2", "2", "2", "2", "2", "2", "2", "2"]),
        # 2016: prediction always fully normalised; GT raw when identical (not even stripped)
        ("Yes", TEN_YES, "2016", "yes", TEN_YES),
        ("two", ["two"] * 10, "2016", "2", ["two"] * 10),
        ("yes", [" yes"] * 10, "2016", "yes", [" yes"] * 10),
        # 2016: GT disagree → punctuation step only (no number words, no articles, no lower-case)
        ("Two.", MIXED, "2016", "2", ["Two", "2", "two ", "2", "2", "a two", "2", "2", "two", "2"]),
        ("a dog", ["a dog", "dog"] * 5, "2016", "dog", ["a dog", "dog"] * 5),
    ],
)
def test_normalize_question(
    prediction: str, gts: list[str], version: str, expected_prediction: str, expected_gts: list[str]
) -> None:
    assert normalize_question(prediction, gts, version) == (expected_prediction, expected_gts)


def test_default_version_is_2021_and_unknown_refused() -> None:
    assert normalize_question("Yes", TEN_YES) == ("Yes", TEN_YES)
    with pytest.raises(ValueError, match="2021, 2016"):
        normalize_question("yes", TEN_YES, "2017")
