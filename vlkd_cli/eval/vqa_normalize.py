"""Answer normalisation of the official VQA evaluation, in both of its published variants.

Reproduces `PythonEvaluationTools/vqaEvaluation/vqaEval.py` of GT-Vision-Lab/VQA (`VQAEval.processPunctuation`,
`VQAEval.processDigitArticle` and the per-question preamble of `VQAEval.evaluate`) as run by Python 3:

* version "2021" = commit a013f00 (2021-03-11, "Fixed processing answers bug", GitHub HEAD): the prediction and
  every GT answer have `\\n` and `\\t` replaced by spaces and are stripped; then, **only if the GT strings are not
  all identical**, the prediction and every GT answer go through the punctuation step then the digit/article
  step. When the 10 GT answers agree nothing else is normalised ("Yes" or "yes!" score 0 against ten "yes"),
  deliberately so (GT-Vision-Lab/VQA issue #14: protects OCR-style answers).
* version "2016" = commit 458a8b2 (2016-10-08 .. 2021-03-10; copied by salesforce/LAVIS): the prediction is always
  cleaned, stripped, and put through both steps; the GT answers are neither cleaned nor stripped, and get the
  punctuation step only (no digit/article step), only if they are not all identical. So a GT "two" or "a dog"
  can never equal a prediction (which became "2" / "dog"), and GT answers that agree are compared raw.

Punctuation step (`process_punctuation`), decisions taken on the *input* string, edits applied cumulatively: for
each character p of `PUNCTUATION` in order, if `p + " "` or `" " + p` occurs in the input, or the input contains
digit-comma-digit anywhere, every p is deleted; otherwise every p becomes a space. Then periods: the official
pattern `(?!<=\\d)(\\.)(?!\\d)` opens with a mistyped look-behind (a look-ahead for the literal "<=" and a digit,
which can never match at a period), so each "." not followed by a digit is deleted ("3.5" and ".5" keep theirs,
"5." and "a.m" lose it). `re.UNICODE` is passed positionally into the `count` slot of `Pattern.sub`, so at most
the first 32 such periods are deleted. Apostrophe, colon, `* # $ % & ~ ^ |` are not touched.

Digit/article step (`process_digits_articles`): lower-case, split on whitespace, map whole tokens none/zero → 0,
one → 1 .. ten → 10, drop the tokens a, an, the (after the number mapping), replace tokens found in the
contractions table (keys are facts of the official file, including the unreachable capitalised ones such as
"Im" and the odd "somebody'd" → "somebodyd"), join with single spaces.

Python 3 semantics (what this module reproduces; the official file is Python 2 code): `\\d` matches any Unicode
decimal digit (Python 2 without `re.UNICODE` matched ASCII 0-9 only, so "x.٣" lost its period there) and
`str.lower` follows Python 3 ("İ" becomes "i" plus a combining dot). On ASCII answers both agree: the official
code run unmodified under Python 2.7 gives the same numbers on tests/eval/data/vqa_golden.json.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

VERSIONS: tuple[str, ...] = ("2021", "2016")
"""The official variants: "2021" = GT-Vision-Lab/VQA a013f00 (HEAD), "2016" = 458a8b2."""

OFFICIAL_COMMITS: dict[str, str] = {
    "2021": "a013f0043c1e2cdc995922dfe257f7149aa9af06",
    "2016": "458a8b268b1a239dc388e0af4423f3fe7477b04f",
}

PUNCTUATION: tuple[str, ...] = (
    ";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!",
)  # fmt: skip
"""Characters of the punctuation step, in the official order (the order matters: edits are cumulative)."""

PERIOD_LIMIT = 32
"""Periods deleted per string at most (`re.UNICODE` == 32 lands in the `count` argument of `Pattern.sub`)."""

NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
"""Whole-token number words (`manualMap` of the official file)."""

ARTICLES: frozenset[str] = frozenset({"a", "an", "the"})

CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}  # fmt: skip
"""The official contractions table (as of both commits; 458a8b2 fixed its apostrophes)."""

_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")


def clean_whitespace(text: str) -> str:
    """Replace newlines and tabs by spaces, then strip (the preamble of `VQAEval.evaluate`)."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """The official punctuation step (`VQAEval.processPunctuation`).

    Args:
        text: One answer.

    Returns:
        The answer with the characters of `PUNCTUATION` deleted or turned into spaces (decided on `text`), then
        its first `PERIOD_LIMIT` periods that are not followed by a digit deleted.
    """
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for char in PUNCTUATION:
        touches_space = f"{char} " in text or f" {char}" in text
        out = out.replace(char, "" if delete_all or touches_space else " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=PERIOD_LIMIT)


def process_digits_articles(text: str) -> str:
    """The official digit/article step (`VQAEval.processDigitArticle`).

    Args:
        text: One answer (after `process_punctuation`).

    Returns:
        Lower-cased whitespace tokens, number words mapped to digits, articles dropped, contractions restored,
        joined by single spaces.
    """
    tokens = [NUMBER_WORDS.get(token, token) for token in text.lower().split()]
    return " ".join(CONTRACTIONS.get(token, token) for token in tokens if token not in ARTICLES)


def process_answer(text: str) -> str:
    """Both steps: `process_digits_articles(process_punctuation(text))`."""
    return process_digits_articles(process_punctuation(text))


def check_version(version: str) -> str:
    """Return `version` if it names an official variant.

    Raises:
        ValueError: Not one of `VERSIONS`.
    """
    if version not in VERSIONS:
        raise ValueError(f"unknown VQA evaluation version {version!r}: expected one of {', '.join(VERSIONS)}")
    return version


def normalize_question(prediction: str, gt_answers: Sequence[str], version: str = "2021") -> tuple[str, list[str]]:
    """Normalise one question's prediction and GT answers exactly as the chosen official variant does.

    Args:
        prediction: The predicted answer, raw.
        gt_answers: The human answers, raw, in annotation order.
        version: "2021" (a013f00, HEAD) or "2016" (458a8b2); see the module docstring.

    Returns:
        (prediction, GT answers) ready for exact string comparison.

    Raises:
        ValueError: Unknown version.
    """
    if check_version(version) == "2016":
        gts = list(gt_answers)
        if len(set(gts)) > 1:
            gts = [process_punctuation(answer) for answer in gts]
        return process_answer(clean_whitespace(prediction)), gts
    prediction = clean_whitespace(prediction)
    gts = [clean_whitespace(answer) for answer in gt_answers]
    if len(set(gts)) > 1:
        return process_answer(prediction), [process_answer(answer) for answer in gts]
    return prediction, gts
