"""The pure-Python PTB tokenizer against the official one (pycocoevalcap's PTBTokenizer, CoreNLP 3.4.1 jar).

Without Java: the golden corpus (made with the jar by scripts/make_ptb_golden.py) and hand-written cases.
With Java and pycocoevalcap: fresh random sentences side by side, cross-caption context, line-break hazards.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
import shutil
import time
from pathlib import Path

import pytest

from vlkd_cli.eval import ptb_tokenizer
from vlkd_cli.eval.ptb_tokenizer import ptb_tokenize, ptb_tokens, tokenize_captions

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "data" / "ptb_golden.jsonl.gz"


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_ptb_golden", ROOT / "scripts" / "make_ptb_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()


def _golden() -> list[dict[str, str]]:
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------------------------------------- no Java needed
def test_golden_corpus_is_reproduced_exactly():
    rows = _golden()
    assert len(rows) >= 5000
    bad = [(r["text"], r["ptb"], ptb_tokenize(r["text"])) for r in rows if ptb_tokenize(r["text"]) != r["ptb"]]
    assert not bad, f"{len(bad)} of {len(rows)} differ, e.g. (text, jar, ours): {bad[:5]}"


def test_golden_corpus_comes_from_the_generator():
    texts = [r["text"] for r in _golden()]
    assert texts == GEN.generate_sentences(GEN.GOLDEN_SEED, len(texts))
    assert not any(ch in t for t in texts for ch in GEN.HAZARDS)


# Expected outputs checked with the jar (OpenJDK 17): the quirks of docs/evaluation.md, "Captioning (`eval-caption`)",
# and many more cases of the official tokenizer's behaviour.
# (caption, pycocoevalcap's result)
TABLE = [
    # brackets survive as lower-cased escapes (the filter's entries are upper case)
    ("A man (in red)",                              "a man -lrb- in red -rrb-"),
    ("[x] {y}",                                     "-lsb- x -rsb- -lcb- y -rcb-"),
    # clitics and assimilations
    ("it's",                                        "it 's"),
    ("can't",                                       "ca n't"),
    ("won't",                                       "wo n't"),
    ("isn't",                                       "is n't"),
    ("I'm",                                         "i 'm"),
    ("they're we'll he'd we've",                    "they 're we 'll he 'd we 've"),
    ("cannot",                                      "can not"),
    ("gonna wanna gotta",                           "gon na wan na got ta"),
    ("dont",                                        "dont"),
    ("80's",                                        "80 's"),
    ("the dogs' bowls",                             "the dogs bowls"),
    ("it\u2019s",                                   "it 's"),
    ("don\u2019t",                                  "do n't"),
    ("o'clock",                                     "o'clock"),
    ("rock 'n' roll",                               "rock 'n' roll"),
    ("the '90s",                                    "the '90s"),
    # hyphenated words stay whole; dashes are dropped
    ("toy-train 10-year-old e-mail 50-50 a-b-c",    "toy-train 10-year-old e-mail 50-50 a-b-c"),
    ("wait -- what",                                "wait what"),
    ("a \u2013 b \u2014 c",                         "a b c"),
    ("can't-miss",                                  "ca n't miss"),
    # sentence punctuation is split off and dropped; runs of ! and ? are one token, not in the filter
    ("Hello, world! Really? Yes; no: maybe.",       "hello world really yes no maybe"),
    ("Wait... no . . . yes\u2026 ok",               "wait no yes ok"),
    ("Wow!!! What??? Huh?!",                        "wow !!! what ??? huh ?!"),
    # numbers keep their inner punctuation
    ("3.5 1,000 12:30 1/2 2nd 10th 1990s",          "3.5 1,000 12:30 1/2 2nd 10th 1990s"),
    ("it costs 5.",                                 "it costs 5"),
    ("1 1/2 cups",                                  "1\u00a01/2 cups"),
    # abbreviations keep their period, other words do not
    ("the U.S. flag",                               "the u.s. flag"),
    ("Mr. Smith and Dr. Who",                       "mr. smith and dr. who"),
    ("at 5 p.m. today",                             "at 5 p.m. today"),
    ("e.g. this, i.e. that, etc.",                  "e.g. this i.e. that etc."),
    ("plan a.",                                     "plan a."),
    ("a word. inside",                              "a word inside"),
    # quotes, ASCII and curly, become `` '' ` ' and are dropped
    ('"Hi" she said',                               "hi she said"),
    ("'single'",                                    "single"),
    ("\u201ccurly\u201d \u2018single\u2019",        "curly single"),
    # currency and symbols
    ("$5.50",                                       "$ 5.50"),
    ("\u20ac5",                                     "$ 5"),
    ("\u00a33",                                     "# 3"),
    ("\u00a5100",                                   "\u00a5 100"),
    ("50%",                                         "50 %"),
    ("3*4",                                         "3 * 4"),
    ("A &amp; B",                                   "a & b"),
    ("a/b and/or c",                                "a/b and/or c"),
    (":) :( ;)",                                    ":-rrb- :-lrb- ;-rrb-"),
    ("AT&T",                                        "at&t"),
    # letters: no Americanization, accents and other scripts kept, emoji deleted
    ("colour grey caf\u00e9",                       "colour grey caf\u00e9"),
    ("\u65e5\u672c \u041c\u043e\u0441\u043a\u0432\u0430", "\u65e5\u672c \u043c\u043e\u0441\u043a\u0432\u0430"),
    ("a dog \U0001f436 here",                       "a dog here"),
    # whitespace
    ("  a \t b  ",                                  "a b"),
    ("",                                            ""),
    ("   ",                                         ""),
]  # fmt: skip


@pytest.mark.parametrize(("caption", "expected"), TABLE, ids=[c or "<empty>" for c, _ in TABLE])
def test_hand_written_cases(caption, expected):
    assert ptb_tokenize(caption) == expected


def test_raw_tokens_before_the_filter():
    assert ptb_tokens('A man (in red) said "hi".') == ["a", "man", "-lrb-", "in", "red", "-rrb-", "said", "``", "hi",
                                                       "''", "."]  # fmt: skip
    assert ptb_tokens("It ends with etc.") == ["it", "ends", "with", "etc.", "."]  # the abbreviation's extra period


@pytest.mark.parametrize("brk", ["\n", "\r", "\r\n", "\u2028", "\u2029", "\u000b", "\u000c", "\u0085"])
def test_line_breaks_inside_a_caption_count_as_spaces(brk):
    assert ptb_tokenize(f"a{brk}b") == ptb_tokenize("a b") == "a b"
    out = tokenize_captions({1: [f"a dog{brk}on grass", "a cat"], 2: ["x"]})
    assert out == {1: ["a dog on grass", "a cat"], 2: ["x"]}


def test_the_next_caption_matters_only_where_the_jar_looks_past_the_line():
    # checked with the official wrapper: a one-letter abbreviation before "A ..."; "no." before a digit; end of file
    assert tokenize_captions({1: ["vitamin C.", "A dog"]})[1] == ["vitamin c", "a dog"]
    assert tokenize_captions({1: ["vitamin C.", "a dog"]})[1] == ["vitamin c.", "a dog"]
    assert tokenize_captions({1: ["room no.", "5 dogs"], 2: ["room no.", "five dogs"]}) == {
        1: ["room no.", "5 dogs"], 2: ["room no", "five dogs"]}  # fmt: skip
    assert tokenize_captions({1: ["hi :)"], 2: ["hi :)"]}) == {1: ["hi :-rrb-"], 2: ["hi -rrb-"]}
    assert ptb_tokenize("vitamin C.") == "vitamin c." and ptb_tokenize("hi :)") == "hi :-rrb-"


def test_tokenize_captions_keeps_keys_order_and_lengths():
    captions = {"b": ["A dog.", "Two cats!"], "a": [], 3: ["It's   fine"]}
    out = tokenize_captions(captions)
    assert list(out) == ["b", "a", 3]
    assert out == {"b": ["a dog", "two cats"], "a": [], 3: ["it 's fine"]}


@pytest.mark.parametrize("bad", [{1: "a caption"}, {1: ["ok", None]}, {1: [b"bytes"]}])
def test_tokenize_captions_rejects_non_strings(bad):
    with pytest.raises(TypeError):
        tokenize_captions(bad)
    with pytest.raises(TypeError):
        ptb_tokenize(None)  # type: ignore[arg-type]


def test_speed_on_coco_style_captions():
    rng = random.Random(11)
    captions = [f"{GEN.coco_caption(rng)} #{i}" if i % 7 == 0 else GEN.coco_caption(rng) for i in range(30000)]
    ptb_tokenizer._line.cache_clear()
    start = time.process_time()
    tokenize_captions({i: captions[i : i + 5] for i in range(0, len(captions), 5)})
    assert time.process_time() - start < 3.0  # about 0.3 s here; catches a lost fast path or a quadratic step


# ---------------------------------------------------------------------------------------------- with Java
def _official():
    if shutil.which("java") is None:
        pytest.skip("java not found: the official PTB tokenizer needs it")
    return pytest.importorskip("pycocoevalcap.tokenizer.ptbtokenizer", reason="pycocoevalcap not installed")


def test_fresh_random_sentences_match_the_jar():
    _official()
    sentences = GEN.generate_sentences(seed=99, count=400, hand_picked=False)  # not the golden seed
    official = GEN.official_tokenize(sentences)
    bad = [(s, o, ptb_tokenize(s)) for s, o in zip(sentences, official) if ptb_tokenize(s) != o]
    assert not bad, f"{len(bad)} of {len(sentences)} differ, e.g. (text, jar, ours): {bad[:5]}"


def test_tokenize_captions_matches_the_wrapper_with_neighbours():
    module = _official()
    rng = random.Random(5)
    sentences = GEN.generate_sentences(seed=123, count=300, hand_picked=False)
    # endings and starts whose look-ahead crosses the line end
    sentences += ["the letter X.", "A dog", "room no.", "5 dogs", "art.", "2 cats", "etc.", "The end :)"]
    captions: dict[int, list[str]] = {}
    while sentences:
        n = rng.randint(1, 5)
        captions[len(captions)] = [sentences.pop(0) for _ in range(min(n, len(sentences)))]
    official = module.PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})
    assert tokenize_captions(captions) == official


def test_line_break_hazards_of_the_official_wrapper():
    module = _official()
    official = module.PTBTokenizer().tokenize({1: [{"caption": "a\rb"}], 2: [{"caption": "c"}]})
    assert official == {1: ["a"], 2: ["b"]}  # the wrapper shifts "b" to image 2 and loses "c"
    assert module.PTBTokenizer().tokenize({1: [{"caption": "a b"}]}) == {1: [ptb_tokenize("a\rb")]}
    assert tokenize_captions({1: ["a\rb"], 2: ["c"]}) == {1: ["a b"], 2: ["c"]}


def test_fast_path_over_many_captions_decides_as_caption_by_caption():
    # tokenize_captions runs the fast path as regex scans over all captions joined; ptb_tokenize, one by one
    rng = random.Random(17)
    pieces = ["a", "A", "dog", "Mr", "mr.", "U", "no.", "etc.", "x.", "5", "555", "1234", "3.5", "10-year-old", "a-",
              "-a", "--", ".", ". .", ",", "!", "?", "!!", ";", ":", "a,b", "gonna", "GONNA", "gonna-be", "cannot.",
              "it's", "(", "\u00e9", "\t", "  "]  # fmt: skip
    captions = [" ".join(rng.choice(pieces) for _ in range(rng.randint(0, 7))) for _ in range(5000)]
    captions += GEN.generate_sentences(seed=31, count=2000, hand_picked=False)
    captions = [ptb_tokenizer._clean(c) for c in captions]
    assert ptb_tokenizer._simple_lines(captions) == [ptb_tokenizer._simple_line(c) for c in captions]
    assert ptb_tokenizer._simple_lines([]) == []
