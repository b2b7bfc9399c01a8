"""Generate the golden corpus for the pure-Python PTB tokenizer (`vlkd_cli.eval.ptb_tokenizer`).

Sentences are generated deterministically (fixed seed): COCO-style captions from templates and vocabularies (subjects,
verbs, objects, colours, numbers, places; varied casing and punctuation), the same captions with odd snippets inserted,
dense "soups" of the tokenizer's odd cases, and a fixed list of hand-picked cases. Each sentence is tokenized by the
official pycocoevalcap ``PTBTokenizer`` (Stanford CoreNLP 3.4.1 jar, Java required), followed in the jar's input by a
neutral caption so that no look-ahead rule sees a neighbour (this is what ``ptb_tokenize`` reproduces). Sentences with
characters on which the official wrapper misaligns lines (``\\n \\r \\v \\f`` U+0085 U+2028 U+2029) are excluded.

Usage:
    python scripts/make_ptb_golden.py                      # writes tests/eval/data/ptb_golden.jsonl.gz
    python scripts/make_ptb_golden.py --compare 5000 --seed 7   # match rate of ptb_tokenize on a fresh sample

Output: gzip (mtime 0, reproducible) of JSON lines ``{"text": ..., "ptb": ...}``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "eval" / "data" / "ptb_golden.jsonl.gz"
GOLDEN_SEED = 20240607
HAZARDS = "\n\r\u2028\u2029\u000b\u000c\u0085"
SENTINEL = "zz"  # a neutral next caption: starts with a lower-case letter

# fmt: off
SUBJECTS = ["man", "woman", "boy", "girl", "dog", "cat", "person", "child", "skateboarder", "surfer", "giraffe",
            "zebra", "elephant", "horse", "bus", "train", "truck", "motorcycle", "pizza", "plate", "group of people",
            "couple", "baseball player", "tennis player", "chef", "bird", "teddy bear", "kitchen", "bathroom",
            "clock tower"]
ADJECTIVES = ["red", "white", "black", "blue", "green", "yellow", "brown", "large", "small", "young", "old", "tall",
              "little", "double-decker", "black-and-white", "stainless steel", "wooden", "grey", "colourful", "happy"]
VERBS = ["riding", "holding", "sitting on", "standing next to", "walking down", "eating", "looking at", "playing with",
         "parked in front of", "flying over", "laying on", "throwing", "catching", "cutting", "drinking from",
         "is riding", "are standing in", "is sitting on top of", "sits on", "stands near", "waits at", "crosses"]
OBJECTS = ["a wave", "a surfboard", "a bench", "the street", "a frisbee", "a kite", "a laptop", "a cake", "the grass",
           "a table", "a sandwich", "a field", "an umbrella", "a bicycle", "a fire hydrant", "a stop sign", "the snow",
           "a large window", "two plates of food", "a cup of coffee", "some bananas", "a tennis racket", "the beach"]
PLACES = ["in a park", "on a city street", "at the beach", "in the kitchen", "near the water", "on a sunny day",
          "in front of a building", "at night", "in the snow", "next to a fence", "on a train track", "in a field",
          "by the ocean", "under a tree", "at an airport", "inside a restaurant"]
NUMBERS = ["a", "an", "one", "two", "three", "four", "several", "many", "some", "a few", "2", "3", "10", "a couple of"]

ODD_SNIPPETS = [
    "(in red)", "[sic]", "{note}", "( a )", "[ b ]", "{ c }", "can't", "won't", "isn't", "don't", "it's", "they're",
    "we'll", "he'd", "I'm", "we've", "it\u2019s", "don\u2019t", "can\u2019t", "cannot", "gonna", "wanna", "gotta",
    "Cannot", "GONNA", "\"hello\"", "\" quoted \"", "'single'", "\u201ccurly\u201d", "\u2018curly\u2019", "``latex''",
    "!!!", "???", "?!", "...", "\u2026", ". . .", "Mr.", "Dr.", "St.", "U.S.", "e.g.", "i.e.", "etc.", "p.m.", "a.m.",
    "vs.", "Jr.", "Inc.", "Co.", "Corp.", "Ltd.", "Mt.", "Ft.", "No.", "no. 5", "A.", "b.", "x.", "3.5", "1,000",
    "12:30", "1/2", "2nd", "10th", "1990s", "$5", "$5.50", "\u20ac5", "\u00a33", "\u00a5100", "50%", "&", "&amp;",
    "a/b", "and/or", "3*4", "2+2", "x=1", "#1", "@home", "john@example.com", "www.example.com",
    "http://cocodataset.org", "example.org/a", "toy-train", "10-year-old", "e-mail", "50-50", "a-b-c", "--", "\u2013",
    "\u2014", "can't-miss", ":)", ":(", ";)", ":-)", ":D", "^_^", "caf\u00e9", "na\u00efve", "jalape\u00f1o",
    "\u00fcber", "\u65e5\u672c", "\u041c\u043e\u0441\u043a\u0432\u0430", "\u0627\u0644\u0642\u0637", "\U0001f600",
    "\U0001f355", "\t", "  ", "'90s", "dogs'", "o'clock", "rock 'n' roll", "80's", "y'all", "'em", "ol'", "1 1/2",
    "(555) 123-4567", "12/25/2014", "\u00bd", "AT&T", "S&P", "c++", "C#", "file.jpg", "<b>", "</i>", "&quot;", "&lt;",
    "&gt;", "Ph.D.", "a.k.a.", "Calif.", "Sept.", "ca. 1900", "fig. 3", "pty. ltd", "#hashtag", "@user",
    "\u00ab guillemets \u00bb", "\u201elow\u201c", "-LRB-", "(3)", "x2", "3x", "4-5", "5.", "10.", "20%.", "\u00ad",
    "\u00a0", "\u3000", "\u200b", "___", "***", "<3", "=)", ">:(", "TV's", "kids'", "ma'am", "'tis", "'twas", "'til",
    "'cause", "nor'easter", "c'mon", "l'amour", "d'oeuvres", "O'Neil", "Cap'n",
]
HAND_PICKED = [
    "", " ", "\t", "   ", ".", "...", "!!!", "A.", "a.", "I.", "x", "A man.", "A man", "a man .",
    "A MAN RIDING A HORSE.", "A man (in red) can't go.", "It's 3.5 dollars, $5.50 or \u20ac5!!!",
    "Mr. Smith went to Washington D.C. yesterday", "The U.S. flag flies.", "She lives in the U.S.",
    "Dr. Jones, Jr. and Mrs. Jones arrive at 5 p.m.", "Apples, oranges, etc. are on the table.",
    "See e.g. the dog, i.e. the brown one.", "Team A vs. team B.",
    "Acme Inc. and Foo Co. and Bar Corp. and Baz Ltd. signs", "Mt. Fuji and Ft. Worth and St. Louis", "Room no. 5",
    "A dog on a bench.\u00a0", "  leading and trailing spaces  ", "tabs\tbetween\twords", "many    spaces   here",
    "Isn't it nice?", "They're here; we'll go; he'd stay; I'm done; we've won.", "I cannot believe it",
    "gonna wanna gotta lemme gimme", "\"A quoted caption\"", "'Single quoted'", "\u201cCurly double\u201d",
    "\u2018Curly single\u2019", "He said \"hi\" to her.", "Wait... what?!", "Really\u2026 ok", "So . . . yes",
    "What???", "Numbers 3.5 1,000 12:30 1/2 2nd 10th 1990s", "$5 $5.50 \u20ac5 \u00a33 \u00a5 50%", "A & B &amp; C",
    "a/b and/or c", "3 * 4 + 5 = 17", "#1 @home", "mail john.doe@example.com now",
    "visit www.example.com or http://a.b/c?d=1", "a toy-train and an e-mail for a 10-year-old", "wait -- what",
    "en \u2013 dash and em \u2014 dash", ":) :( ;)", "Caf\u00e9 na\u00efve r\u00e9sum\u00e9",
    "\u4e00\u53ea\u72d7\u5728\u8349\u5730\u4e0a",
    "\u0421\u043e\u0431\u0430\u043a\u0430 \u0431\u0435\u0436\u0438\u0442", "a dog \U0001f436 and a cat \U0001f431",
    "The party is in the '90s", "the dogs' bowls", "at 5 o'clock", "rock 'n' roll music",
    "It ends with an abbreviation etc.", "It ends with Inc.", "It ends with U.S.", "a word. inside", "the year 2014.",
    "it costs 5.", "Vitamin C.", "plan B.", "the letter x. A dog", "A man's hat", "James' car", "the kids\u2019 toys",
    "don\u2019t", "DON'T", "Won't", "ca n't", "can't-miss offer", "(parens) [brackets] {braces}",
    "( spaced ) [ spaced ] { spaced }", "-LRB- literal", "x\u00ady soft hyphen", "a\u200bb zero width",
    "\ufeffBOM start", "NUL\x00char", "del\x7fchar", "bell\x07char",
]
# fmt: on


def coco_caption(rng: random.Random) -> str:
    """A COCO-style caption with varied casing and final punctuation."""
    subject = (
        f"{rng.choice(NUMBERS)} {rng.choice(ADJECTIVES) + ' ' if rng.random() < 0.6 else ''}{rng.choice(SUBJECTS)}"
    )
    parts = [subject, rng.choice(VERBS), rng.choice(OBJECTS)]
    if rng.random() < 0.7:
        parts.append(rng.choice(PLACES))
    if rng.random() < 0.2:
        parts.insert(3, "and " + rng.choice(OBJECTS))
    text = " ".join(parts)
    if rng.random() < 0.15:
        text = text.replace(" ", ", ", 1) if rng.random() < 0.5 else text + ", " + rng.choice(PLACES)
    text = _casing(rng, text)
    return text + rng.choice([".", ".", ".", "", "", " .", "!", " ", ". ", "?", "..", " , "])


def _casing(rng: random.Random, text: str) -> str:
    r = rng.random()
    if r < 0.55:
        return text[:1].upper() + text[1:]
    if r < 0.8:
        return text
    if r < 0.9:
        return text.upper()
    return text.title()


def odd_caption(rng: random.Random) -> str:
    """A COCO-style caption with 1-3 odd snippets inserted between words."""
    words = coco_caption(rng).split(" ")
    for _ in range(rng.randint(1, 3)):
        snippet = rng.choice(ODD_SNIPPETS)
        pos = rng.randint(0, len(words))
        glue = rng.random()
        if glue < 0.15 and pos > 0:  # glued to the previous word
            words[pos - 1] += snippet
        elif glue < 0.25 and pos < len(words):  # glued to the next word
            words[pos] = snippet + words[pos]
        else:
            words.insert(pos, snippet)
    return " ".join(words)


def soup(rng: random.Random) -> str:
    """A dense mix of odd snippets and short words, with random separators."""
    pieces = ODD_SNIPPETS + ["a", "the", "dog", "A", "I", "U", "x", "5", "10", "it", "man", "Co", "St", "no"]
    out = []
    for _ in range(rng.randint(1, 7)):
        out.append(rng.choice(pieces))
        out.append(rng.choice([" ", " ", " ", "", ".", ",", "-", "/", "'", ". ", "  ", "\t"]))
    text = "".join(out)
    return text.strip() if rng.random() < 0.5 else text


def generate_sentences(seed: int, count: int, *, hand_picked: bool = True) -> list[str]:
    """Deterministic test sentences: ~50 % COCO-style, ~35 % with odd snippets, ~15 % odd soups (+ hand-picked).

    Args:
        seed: Random seed.
        count: Number of sentences (hand-picked ones included).
        hand_picked: Start with the fixed hand-picked cases.

    Returns:
        Sentences without the characters on which the official wrapper misaligns lines.
    """
    rng = random.Random(seed)
    out = [s for s in HAND_PICKED if not _has_hazard(s)] if hand_picked else []
    while len(out) < count:
        r = rng.random()
        text = coco_caption(rng) if r < 0.5 else odd_caption(rng) if r < 0.85 else soup(rng)
        if not _has_hazard(text):
            out.append(text)
    return out[:count]


def _has_hazard(text: str) -> bool:
    return any(ch in text for ch in HAZARDS)


def official_tokenize(sentences: Sequence[str]) -> list[str]:
    """pycocoevalcap's PTBTokenizer on each sentence, each followed by a neutral caption in the jar's input."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    captions = {i: [{"caption": s}, {"caption": SENTINEL}] for i, s in enumerate(sentences)}
    result = PTBTokenizer().tokenize(captions)
    out = []
    for i in range(len(sentences)):
        tokenized, sentinel = result[i]
        if sentinel != SENTINEL:
            raise RuntimeError(f"misaligned output at sentence {i}: {sentences[i]!r}")
        out.append(tokenized)
    return out


def write_golden(path: Path, sentences: Sequence[str], tokenized: Sequence[str]) -> None:
    """Gzipped JSON lines, reproducible (mtime 0)."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        for text, ptb in zip(sentences, tokenized, strict=True):
            gz.write((json.dumps({"text": text, "ptb": ptb}, ensure_ascii=False) + "\n").encode())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def compare(seed: int, count: int) -> float:
    """Match rate of ptb_tokenize against the jar on a fresh sample; prints the first mismatches."""
    sys.path.insert(0, str(ROOT))
    from vlkd_cli.eval.ptb_tokenizer import ptb_tokenize

    sentences = generate_sentences(seed, count, hand_picked=False)
    official = official_tokenize(sentences)
    bad = [(s, o, ptb_tokenize(s)) for s, o in zip(sentences, official) if ptb_tokenize(s) != o]
    for text, want, got in bad[:20]:
        print(f"MISMATCH {text!r}\n  jar : {want!r}\n  ours: {got!r}")
    rate = 1 - len(bad) / len(sentences)
    print(f"{len(sentences) - len(bad)}/{len(sentences)} equal ({100 * rate:.2f} %)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=GOLDEN_SEED)
    parser.add_argument("--count", type=int, default=8000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--compare", type=int, default=0, metavar="N",
                        help="instead of writing, compare ptb_tokenize with the jar on N fresh sentences")  # fmt: skip
    args = parser.parse_args()
    if args.compare:
        rate = compare(args.seed, args.compare)
        sys.exit(0 if rate == 1.0 else 1)
    sentences = generate_sentences(args.seed, args.count)
    tokenized = official_tokenize(sentences)
    write_golden(args.out, sentences, tokenized)
    print(f"wrote {len(sentences)} sentences to {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
