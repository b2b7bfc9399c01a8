"""The PTB tokenization of the COCO caption evaluation, in pure Python (no Java).

Reproduced: pycocoevalcap's ``tokenizer/ptbtokenizer.py`` (tylin/coco-caption, salaniz/pycocoevalcap 1.2). It writes
all captions to a file, one per line (``\\n`` inside a caption replaced by a space), runs
``java -cp stanford-corenlp-3.4.1.jar edu.stanford.nlp.process.PTBTokenizer -preserveLines -lowerCase FILE`` and
post-processes each output line: right-strip, split on single spaces, drop the 17 punctuation tokens
``''  '  ``  `  -LRB-  -RRB-  -LCB-  -RCB-  .  ?  !  ,  :  -  --  ...  ;`` (exact and case-sensitive), re-join with
single spaces. `ptb_tokenize` and `tokenize_captions` return exactly that, without Java.

The jar (Stanford CoreNLP 3.4.1 ``PTBLexer.flex``, a JFlex scanner) runs with its defaults (PTB3 escaping: normalize
space, ampersand entity, currency, fractions, parentheses, other brackets; LaTeX quotes; PTB3 ellipsis and dashes;
split assimilations; no americanize; ``/`` and ``*`` not escaped; untokenizable characters deleted) plus the two
flags: ``-preserveLines`` (newlines become line breaks of the output) and ``-lowerCase`` (each token lower-cased after
normalization). At every position the longest match of any rule wins - a rule's trailing context ``r1/r2`` counts
towards the length - and ties go to the earlier rule. This module restates the rules as Python regular expressions,
in the lexer's order, and applies the same actions; the facts (abbreviation lists, clitics, number, phone, fraction,
currency, quote, ellipsis, URL, e-mail and emoticon patterns) come from the 3.4.1 source, the code is our own. The
letter and digit classes are the jar's, probed character by character on the Basic Multilingual Plane (not Python's
Unicode database). Examples: ``( ) [ ] { }`` -> ``-lrb- -rrb- -lsb- -rsb- -lcb- -rcb-`` (kept: the filter's entries
are upper case), ``can't`` -> ``ca n't``, ``cannot`` -> ``can not``, ``gonna`` -> ``gon na``, ``€5`` -> ``$ 5``,
``£3`` -> ``# 3``, ``&amp;`` -> ``&``, ``!!!`` kept (not in the filter), ``:)`` -> ``:-rrb-``, ``u.s.``/``mr.`` keep
their period, ``1 1/2`` -> one token with U+00A0, emoji and other characters outside the BMP deleted.

Context across captions: in the official file every caption but the last is followed by ``\\n`` and the next caption,
and some rules look past the end of the line. `ptb_tokenize` tokenizes a caption as if a newline and a caption that
starts with a lower-case letter followed it; `tokenize_captions` uses the real neighbours in the wrapper's order (the
last caption at end of file), as the official wrapper does. The result then differs only in two cases: a caption
ending in a one-letter abbreviation (``... vitamin C.``) keeps ``c.`` unless the next caption starts with one of the
lexer's sentence-start words (``A``, ``The``, ``He``, ``It``, ...), then ``c``; and ``no.``, ``art.``, ``fig.``,
``ca.``, ``op.``, ``pp.``, ``prop.``, ``bldg.`` at the end keep their period only when the next caption starts with a
digit. At end of file, ``:)``, ``'90`` and ``1.txt`` at the very end of a caption are split (``: -rrb-``).

Line breaks: the official wrapper replaces only ``\\n``; ``\\r``, U+2028, U+2029, ``\\v`` and ``\\f`` inside a caption
make the jar start a new output line and every later caption is matched with the wrong image; U+0085 becomes
``...``. Here every caption is tokenized on its own: ``\\n``, ``\\r``, U+2028, U+2029, ``\\v``, ``\\f`` and U+0085 are
treated as a space (the result is what the jar outputs when the caption has a space there), so nothing shifts. An
empty or blank caption gives ``""`` (also at the end of the file, where the wrapper with OpenJDK 17 gives ``""`` too).

Validation: equal to the jar (OpenJDK 17) on the golden corpus of ``scripts/make_ptb_golden.py`` (8,000 sentences,
``tests/eval/data/ptb_golden.jsonl.gz``), on fresh samples of that generator, on every BMP character in four
contexts, and on several hundred thousand random strings of odd tokens (raw token streams compared before the
filter), with ``tokenize_captions`` also compared with the wrapper on whole files (neighbours, end of file).

Known differences:

* An SGML tag whose quoted attribute value is not closed within the caption (``<a href="x`` followed by a caption
  ``y"> ...``): the jar makes one tag token across the line break (lines stay aligned, but both captions come out as
  the pieces of that token); here a token never extends past its caption (``< a href = x`` / ``y > ...``).
* Lower-casing uses Python's ``str.lower`` except for the five BMP letters that Java 17 (Unicode 13) does not
  lower-case (U+2C2F, U+A7C0, U+A7D0, U+A7D6, U+A7D8, kept only inside URL / e-mail tokens); other Java versions
  or letters outside the BMP may differ, and with an older Java (the README's 1.8) letters added after Unicode 6.2
  may keep their case in the jar's output.
* A token that would end in the middle of a UTF-16 surrogate pair becomes ``?`` (what Java's UTF-8 encoder writes).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import TypeVar

K = TypeVar("K")

PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
"""The 17 tokens pycocoevalcap drops after tokenization (compared after lower-casing, so -LRB- etc. never match)."""

# Characters the official wrapper does not replace but the jar reads as line breaks; here they count as a space.
_LINE_BREAKS = re.compile("[\n\r\u2028\u2029\u000b\u000c\u0085]")

# ----------------------------------------------------------------------------------------------------------------
# Character classes of the jar, probed character by character (U+0080-U+FFFF) with the shipped 3.4.1 jar:
# _LETTER: the lexer's LETTER macro (JFlex [:letter:] plus its extra ranges of combining marks etc.);
# _NON_JAVA_LETTER: members of LETTER that are not JFlex [:letter:] (used by THING / APOWORD); _DIGIT: [:digit:].
# Format: hex code points and ranges. ASCII is added in the code.
_LETTER_RANGES = (
    "aa ad b5 ba c0-d6 d8-f6 f8-37d 384-386 388-38a 38c 38e-3a1 3a3-481 483-487 48a-527 531-556 559-55f 561-587 "
    "591-5bd 5bf 5c1-5c2 5c4-5c5 5c7 5d0-5ea 5f0-5f2 615-61a 620-65e 66e-6d3 6d5-6ef 6fa-6ff 70f-7b1 7ca-7f5 7fa "
    "800-815 81a 824 828 840-858 8a0 8a2-8ac 900-939 93c-94e 950-955 958-963 971-977 979-97f 981-983 985-98c 98f-990 "
    "993-9a8 9aa-9b0 9b2 9b6-9b9 9bc-9c4 9c7-9c8 9cb-9ce 9d7 9dc-9dd 9df-9e3 9f0-9f1 a01-a03 a05-a0a a0f-a10 a13-a28 "
    "a2a-a30 a32-a33 a35-a36 a38-a39 a3c a3e-a4f a59-a5c a5e a72-a74 a81-a83 a85-a8d a8f-a91 a93-aa8 aaa-ab0 ab2-ab3 "
    "ab5-ab9 abc-acf ad0 ae0-ae1 b05-b0c b0f-b10 b13-b28 b2a-b30 b32-b33 b35-b39 b3d b5c-b5d b5f-b61 b71 b82-b83 "
    "b85-b8a b8e-b90 b92-b95 b99-b9a b9c b9e-b9f ba3-ba4 ba8-baa bae-bb9 bbe-bc2 bc6-bc8 bca-bcd bd0 c01-c03 c05-c0c "
    "c0e-c10 c12-c28 c2a-c33 c35-c39 c3d-c56 c58-c59 c60-c61 c85-c8c c8e-c90 c92-ca8 caa-cb3 cb5-cb9 cbd cde ce0-ce1 "
    "cf1-cf2 d05-d0c d0e-d10 d12-d3a d3d-d44 d46-d48 d4e d60-d61 d7a-d7f d85-d96 d9a-db1 db3-dbb dbd dc0-dc6 e01-e3a "
    "e40-e4e e81-e82 e84 e87-e88 e8a e8d e94-e97 e99-e9f ea1-ea3 ea5 ea7 eaa-eab ead-ebc ebd ec0-ec4 ec6 ec8-ecd "
    "edc-edf f00 f40-f47 f49-f6c f88-f8c 1000-102a 103f 1050-1055 105a-105d 1061 1065-1066 106e-1070 1075-1081 108e "
    "10a0-10c5 10c7 10cd 10d0-10fa 10fc-1248 124a-124d 1250-1256 1258 125a-125d 1260-1288 128a-128d 1290-12b0 "
    "12b2-12b5 12b8-12be 12c0 12c2-12c5 12c8-12d6 12d8-1310 1312-1315 1318-135a 1380-138f 13a0-13f4 1401-166c "
    "166f-167f 1681-169a 16a0-16ea 1700-170c 170e-1711 1720-1731 1740-1751 1760-176c 176e-1770 1780-17b3 17d7 17dc "
    "1820-1877 1880-18a8 18aa 18b0-18f5 1900-191c 1950-196d 1970-1974 1980-19ab 19c1-19c7 1a00-1a16 1a20-1a54 1aa7 "
    "1b05-1b33 1b45-1b4b 1b83-1ba0 1bae-1baf 1bba-1be5 1c00-1c23 1c4d-1c4f 1c5a-1c7d 1ce9-1cec 1cee-1cf1 1cf5-1cf6 "
    "1d00-1dbf 1e00-1f15 1f18-1f1d 1f20-1f45 1f48-1f4d 1f50-1f57 1f59 1f5b 1f5d 1f5f-1f7d 1f80-1fb4 1fb6-1fbc 1fbe "
    "1fc2-1fc4 1fc6-1fcc 1fd0-1fd3 1fd6-1fdb 1fe0-1fec 1ff2-1ff4 1ff6-1ffc 2071 207f 2090-209c 2102 2107 210a-2113 "
    "2115 2119-211d 2124 2126 2128 212a-212d 212f-2139 213c-213f 2145-2149 214e 2183-2184 2c00-2c2e 2c30-2c5e "
    "2c60-2ce4 2ceb-2cee 2cf2-2cf3 2d00-2d25 2d27 2d2d 2d30-2d67 2d6f 2d80-2d96 2da0-2da6 2da8-2dae 2db0-2db6 "
    "2db8-2dbe 2dc0-2dc6 2dc8-2dce 2dd0-2dd6 2dd8-2dde 2e2f 3005-3006 3031-3035 303b-303c 3041-3096 309d-309f "
    "30a1-30fa 30fc-30ff 3105-312d 3131-318e 31a0-31ba 31f0-31ff 3400-4db5 4e00-9fcc a000-a48c a4d0-a4fd a500-a60c "
    "a610-a61f a62a-a62b a640-a66e a67f-a697 a6a0-a6e5 a717-a71f a722-a788 a78b-a78e a790-a793 a7a0-a7aa a7f8-a801 "
    "a803-a805 a807-a80a a80c-a822 a840-a873 a882-a8b3 a8f2-a8f7 a8fb a90a-a925 a930-a946 a960-a97c a984-a9b2 a9cf "
    "aa00-aa28 aa40-aa42 aa44-aa4b aa60-aa76 aa7a aa80-aaaf aab1 aab5-aab6 aab9-aabd aac0 aac2 aadb-aadd aae0-aaea "
    "aaf2-aaf4 ab01-ab06 ab09-ab0e ab11-ab16 ab20-ab26 ab28-ab2e abc0-abe2 ac00-d7a3 d7b0-d7c6 d7cb-d7fb f900-fa6d "
    "fa70-fad9 fb00-fb06 fb13-fb17 fb1d fb1f-fb28 fb2a-fb36 fb38-fb3c fb3e fb40-fb41 fb43-fb44 fb46-fbb1 fbd3-fd3d "
    "fd50-fd8f fd92-fdc7 fdf0-fdfb fe70-fe74 fe76-fefc ff21-ff3a ff41-ff5a ff66-ffbe ffc2-ffc7 ffca-ffcf ffd2-ffd7 "
    "ffda-ffdc "
)
_NON_JAVA_LETTER_RANGES = (
    "ad 2c2-2c5 2d2-2df 2e5-2eb 2ed 2ef-36f 375 378-379 384-385 3f6 483-487 55a-55f 591-5bd 5bf 5c1-5c2 5c4-5c5 5c7 "
    "615-61a 64b-65e 670 6d6-6e4 6e7-6ed 6fd-6fe 70f 711 730-74c 7a6-7b0 7eb-7f3 900-903 93c 93e-94e 951-955 962-963 "
    "981-983 9bc 9be-9c4 9c7-9c8 9cb-9cd 9d7 9e2-9e3 a01-a03 a3c a3e-a4f a81-a83 abc abe-acf b82 bbe-bc2 bc6-bc8 "
    "bca-bcd c01-c03 c3e-c56 d3e-d44 d46-d48 e31 e34-e3a e47-e4e eb1 eb4-ebc ec8-ecd "
)
_DIGIT_RANGES = (
    "660-669 6f0-6f9 7c0-7c9 966-96f 9e6-9ef a66-a6f ae6-aef b66-b6f be6-bef c66-c6f ce6-cef d66-d6f e50-e59 ed0-ed9 "
    "f20-f29 1040-1049 1090-1099 17e0-17e9 1810-1819 1946-194f 19d0-19d9 1a80-1a89 1a90-1a99 1b50-1b59 1bb0-1bb9 "
    "1c40-1c49 1c50-1c59 a620-a629 a8d0-a8d9 a900-a909 a9d0-a9d9 aa50-aa59 abf0-abf9 ff10-ff19 "
)


def _parse_ranges(spec: str) -> list[tuple[int, int]]:
    """'aa c0-d6' -> [(0xaa, 0xaa), (0xc0, 0xd6)]."""
    out = []
    for item in spec.split():
        lo, _, hi = item.partition("-")
        out.append((int(lo, 16), int(hi or lo, 16)))
    return out


def _subtract(ranges: list[tuple[int, int]], minus: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Code point ranges minus other ranges."""
    removed = {c for lo, hi in minus for c in range(lo, hi + 1)}
    points = sorted(c for lo, hi in ranges for c in range(lo, hi + 1) if c not in removed)
    out: list[tuple[int, int]] = []
    for c in points:
        if out and out[-1][1] == c - 1:
            out[-1] = (out[-1][0], c)
        else:
            out.append((c, c))
    return out


def _class_body(ranges: list[tuple[int, int]]) -> str:
    """Ranges as the inside of a regex character class (\\uXXXX escapes)."""
    return "".join(f"\\u{lo:04x}" if lo == hi else f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in ranges)


_LETTER_BODY = "A-Za-z" + _class_body(_parse_ranges(_LETTER_RANGES))
_JLETTER_BODY = "A-Za-z" + _class_body(_subtract(_parse_ranges(_LETTER_RANGES), _parse_ranges(_NON_JAVA_LETTER_RANGES)))
_DIGIT_BODY = "0-9" + _class_body(_parse_ranges(_DIGIT_RANGES))


# ----------------------------------------------------------------------------------------------------------------
# A small translator from the lexer's notation: letters outside [...] match both cases (JFlex %caseless does not
# touch character classes), "(" opens a non-capturing group, {NAME} expands a macro, {n,m} stays a quantifier.
_MACROS: dict[str, str] = {}


def _jf(src: str) -> str:
    """Translate a JFlex-style expression (caseless) into a Python regex."""
    out: list[str] = []
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        if ch == "\\":
            width = 6 if src[i + 1] == "u" else 2
            out.append(src[i : i + width])
            i += width
        elif ch == "[":
            j = i + 1
            if src[j] == "^":
                j += 1
            if src[j] == "]":
                j += 1
            while src[j] != "]":
                j += 2 if src[j] == "\\" else 1
            out.append(src[i : j + 1])
            i = j + 1
        elif ch == "{" and not src[i + 1].isdigit():
            j = src.index("}", i)
            out.append(f"(?:{_MACROS[src[i + 1 : j]]})")
            i = j + 1
        elif ch == "(" and src[i + 1 : i + 2] != "?":
            out.append("(?:")
            i += 1
        elif ch.isascii() and ch.isalpha():
            out.append(f"[{ch.lower()}{ch.upper()}]")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _define(name: str, src: str) -> None:
    _MACROS[name] = _jf(src)


# fmt: off
_MACROS["LETTERCLASS"] = f"[{_LETTER_BODY}]"
_MACROS["JLETTER"] = f"[{_JLETTER_BODY}]"  # JFlex [:letter:]
_MACROS["DIGIT"] = f"[{_DIGIT_BODY}]"  # [:digit:] (its NKo digits are already in it)
_MACROS["SPACECLASS"] = " \\t\\u00a0\\u2000-\\u200a\\u3000"
_MACROS["NLCLASS"] = "\\r\\n\\u2028\\u2029\\u000b\\u000c\\u0085"
_MACROS["UPPER"] = "[A-Z\\u00c0-\\u00d6\\u00d8-\\u00de\\u0391-\\u03a9\\u0410-\\u042f]"  # only decides an extra '.'
_define("SGML", r"\<([!\?][A-Za-z\-][^>\r\n]*|[A-Za-z][A-Za-z0-9_:\.\-]*([ ]+([A-Za-z][A-Za-z0-9_:\.\-]*|"
                r"[A-Za-z][A-Za-z0-9_:\.\-]*[ ]*=[ ]*('[^'\n]*'|\"[^\"\n]*\")))*[ ]*/?"
                r"|/[A-Za-z][A-Za-z0-9_:\.\-]*)[ ]*\>")  # quoted values stop at the caption end
_define("SPLET", r"&[aeiouAEIOU](acute|grave|uml);")
_define("LETTER", r"{LETTERCLASS}|{SPLET}")
_define("LD", r"[" + _LETTER_BODY + _DIGIT_BODY[3:] + r"0-9]|{SPLET}")
_MACROS["SPACE"] = f"[{_MACROS['SPACECLASS']}]"
_MACROS["SPACENL"] = f"[{_MACROS['SPACECLASS']}{_MACROS['NLCLASS']}]"
_define("SPACENLS", r"{SPACENL}+")
_define("SENTEND", r"{SPACENL}({SGML}|{SPACENL}|{UPPER})")
_define("NUM", r"{DIGIT}*([\.:,\u00ad\u066b\u066c]{DIGIT}+)+|{DIGIT}+")
_define("NUMBER", r"[\-+]?{NUM}")
_define("WORD", r"{LETTER}({LD})*([\.!\?]{LETTER}({LD})*)*")
_define("APOS", r"['\u0092\u2019]|&apos;")
_define("APOSETCETERA", r"{APOS}|[`\u0091\u2018\u201b]")
_define("HYPHEN", r"[\-_\u058a\u2010\u2011]")
_define("JLD", r"{JLETTER}|{DIGIT}")
_define("THING", r"([dDoOlL]{APOSETCETERA}({JLD}))?({JLD})+({HYPHEN}([dDoOlL]{APOSETCETERA}({JLD}))?({JLD})+)*")
_define("THINGA", r"[A-Z]+((&amp;|[+&])[A-Z]+)+")
_define("THING3", r"[A-Za-z0-9]+(\-[A-Za-z]+){0,2}(\\?/[A-Za-z0-9]+(\-[A-Za-z]+){0,2}){1,2}")
_define("ACRO2", r"(Canada|Sino|Korean|EU|Japan|non)\-U\.S|U\.S\.\-(U\.S\.S\.R|U\.K)|[A-Za-z](\.[A-Za-z])+")
_define("HTHING", r"[A-Za-z0-9][A-Za-z0-9\.,\u00ad]*(\-({ACRO2}\.|[A-Za-z0-9\u00ad]+))+")
_define("REDAUX", r"{APOS}([msdMSD]|re|ve|ll)")
_define("SWORD", r"[A-Za-z\u00ad]*[A-MO-Za-mo-z]\u00ad*")
_define("SREDAUX", r"n{APOSETCETERA}t")
_define("ABMONTH", r"Sept|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Oct|Nov|Dec")
_define("ABDAYS", r"Thurs|Tues|Mon|Tue|Wed|Thu|Fri")
_define("ABSTATE", r"Ala|Ariz|[A]z|[A]rk|Calif|Colo|Conn|Ct|Dak|[D]el|Fla|Ga|[I]ll|Ind|Kans?|Ky|[L]a|[M]ass|Md|Mich|"
                   r"Minn|[M]iss|Mo|Mont|Neb|Nev|Okla|[O]re|[P]a|Penn|Tenn|[T]ex|Va|Vt|[W]ash|Wisc?|Wyo")
_define("ABCOMP", r"Inc|Cos?|Corp|Pp?t[ye]s?|Ltd|Plc|Rt|Bancorp|Bhd|Assn|Univ|Intl|Sys")
_define("ABNUM", r"tel|est|ext|sq")
_define("ABPTIT", r"Jr|Sr|Bros|(Ed|Ph)\.D|Blvd|Rd|Esq")
_define("ABBREV1", r"({ABMONTH}|{ABDAYS}|{ABSTATE}|{ABCOMP}|{ABNUM}|{ABPTIT}|etc|al|seq|Bldg)\.")
_define("ACRO", r"(Canada|Sino|Korean|EU|Japan|non)\-U\.S|U\.S\.\-(U\.S\.S\.R|U\.K)|[A-Za-z](\.[A-Za-z])*")
_define("ABTITLE", r"Mr|Mrs|Ms|[M]iss|Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev|Maj|Sgt|Cpl|Pvt|"
                   r"Capt|Ste?|Ave|Pres|Lieut|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det|Mt|Ft|Adj|Adv|Asst|Assoc|Ens|Insp|"
                   r"Mlle|Mme|Msgr|Sfc")
_define("ABCOMP2", r"Invt|Elec|Natl|M[ft]g|Dept")
_define("ABBREV4", r"{ABTITLE}|vs|Alex|Wm|Jos|Cie|a\.k\.a|cf|TREAS|Ph|{ACRO}|{ABCOMP2}")
_define("ABBREV3", r"(ca|figs?|prop|nos?|art|bldg|prop|pp|op)\.")
_define("FILENAME_EXT", r"docx|class|jpeg|html|java|bat|bmp|cgi|cpp|dll|doc|exe|gif|htm|jar|jpg|mov|mp3|pdf|php|png|"
                        r"ppt|sql|tar|txt|wav|xml|zip|gz|pl|ps|py|c|h|x")
_define("FILENAME", r"({LD})+(\.({LD})+)*(\.{FILENAME_EXT})")
_define("PHONE", r"(\([0-9]{2,3}\)[ \u00a0]?|(\+\+?)?([0-9]{2,4}[\- \u00a0])?[0-9]{2,4}[\- \u00a0])[0-9]{3,4}"
                 r"[\- \u00a0]?[0-9]{3,5}|((\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}")
_define("FRAC", r"({DIGIT}{1,4}[\- \u00a0])?{DIGIT}{1,4}(\\?/|\u2044){DIGIT}{1,4}")
_define("DATE", r"{DIGIT}{1,2}[\-/]{DIGIT}{1,2}[\-/]{DIGIT}{2,4}")
_define("INSENTP", r"[,;:\u3001]")
_MACROS["QUOTECHARS"] = ("[`\u2018\u2019\u201a\u201b\u201c\u201d\u0091\u0092\u0093\u0094\u201e\u201f\u2039\u203a"
                         "\u00ab\u00bb]")
_define("DBLQUOT", r"\"|&quot;")
_define("URLPATH", r"/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|\.!\?(){},\-]")
_define("SMILEY", r"[<>]?[:;=][\-o\*']?[\(\)DPdpO\\\{@\|\[\]]")
_define("ASIANSMILEY", r"[\^x=~<>]\.\[\^x=~<>\]|[\-\^x=~<>']_[\-\^x=~<>']|\([\-\^x=~<>'][_\.]?[\-\^x=~<>']\)|"
                       r"\([\^x=~<>']\-[\^x=~<>'`]\)")
_MACROS["MISCSYMBOL"] = (
    "[+%&~\\^|\\\\\u00a6\u00a7\u00a8\u00a9\u00ac\u00ae\u00af\u00b0-\u00b3\u00b4-\u00ba\u00d7\u00f7\u0387\u05be\u05c0"
    "\u05c3\u05c6\u05f3\u05f4\u0600-\u0603\u0606-\u060a\u060c\u0614\u061b\u061e\u066a\u066d\u0703-\u070d\u07f6-\u07f8"
    "\u0964\u0965\u0e4f\u1fbd\u2016\u2017\u2020-\u2023\u2030-\u2038\u203b\u203e-\u2042\u2044\u207a-\u207f"
    "\u208a-\u208e\u2100-\u214f\u2190-\u21ff\u2200-\u2bff\u3012\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40"
    "\uff5b-\uff65]"
)
_ACRONYM_NEXT = (
    "[A]bout|[A]ccording|[A]dditionally|[A]fter|[A]n|[A]|[A]s|[A]t|[B]ut|[E]arlier|[H]e|[H]er|[H]ere|[H]owever|[I]f|"
    "[I]n|[I]t|[L]ast|[M]any|[M]ore|[M]r\\.|[M]s\\.|[N]ow|[O]nce|[O]ne|[O]ther|[O]ur|[S]he|[S]ince|[S]o|[S]ome|[S]uch|"
    "[T]hat|[T]he|[T]heir|[T]hen|[T]here|[T]hese|[T]hey|[T]his|[W]e|[W]hen|[W]hile|[W]hat|[Y]et|[Y]ou|{SGML}"
)
# fmt: on


# ----------------------------------------------------------------------------------------------------------------
# Token normalizations (the lexer's actions).
_SINGLE_QUOTE = re.compile("&apos;|'")
_DOUBLE_QUOTE = re.compile('"|&quot;')
# fmt: off
_QUOTE_MAP = str.maketrans({"\u0091": "`", "\u2018": "`", "\u201b": "`", "\u2039": "`", "\u0092": "'", "\u2019": "'",
                            "\u203a": "'", "\u0093": "``", "\u201c": "``", "\u00ab": "``", "\u0094": "''",
                            "\u201d": "''", "\u00bb": "''"})
# fmt: on
_AMP = re.compile("&amp;", re.IGNORECASE)
_CURRENCY = str.maketrans(
    {"\u00a2": "cents", "\u00a3": "#", "\u0080": "$", "\u00a4": "$", "\u20a0": "$", "\u20ac": "$"}
)
_FRACTIONS = str.maketrans({"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3"})
_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "{": "-LCB-", "}": "-RCB-", "[": "-LSB-", "]": "-RSB-"}


def _quotes(tok: str, left: bool) -> str:
    """latexQuotes: ASCII quotes by position, curly/guillemet quotes by their direction."""
    if left:
        tok = _DOUBLE_QUOTE.sub("``", _SINGLE_QUOTE.sub("`", tok))
    else:
        tok = _DOUBLE_QUOTE.sub("''", _SINGLE_QUOTE.sub("'", tok))
    return tok.translate(_QUOTE_MAP)


def _no_soft_hyphens(tok: str) -> str:
    """Soft hyphens (U+00AD) are dropped; a token of only soft hyphens becomes '-'."""
    if "\u00ad" not in tok:
        return tok
    return tok.replace("\u00ad", "") or "-"


def _parens(tok: str) -> str:
    return tok.replace("(", "-LRB-").replace(")", "-RRB-")


def _nbsp_parens(tok: str) -> str:
    return _parens(tok.replace(" ", "\u00a0"))


def _dashes(tok: str) -> str:
    return "--" if 3 <= len(tok) <= 4 else tok


_ACTIONS: dict[str, Callable[[str], str]] = {
    "tok": lambda t: t,
    "soft": _no_soft_hyphens,
    "left": lambda t: _quotes(t, True),
    "right": lambda t: _quotes(t, False),
    "amp": lambda t: _AMP.sub("&", t),
    "mdash": lambda t: "--",
    "ellipsis": lambda t: "...",
    "currency": lambda t: t.translate(_CURRENCY),
    "fraction": lambda t: t.translate(_FRACTIONS),
    "nbsp": lambda t: t.replace(" ", "\u00a0"),
    "phone": _nbsp_parens,
    "parens": _parens,
    "bracket": lambda t: _BRACKETS[t],
    "hyphens": _dashes,
    "lt": lambda t: "<",
    "gt": lambda t: ">",
}


# ----------------------------------------------------------------------------------------------------------------
# The rules, in the lexer's order.
@dataclass(frozen=True)
class _Rule:
    """One lexer rule: main part, optional trailing context (counts for the longest match), action.

    Attributes:
        regex: Main part, followed by ``(?=(trail))`` when the rule has a trailing context (group 1 = trail).
        first: Characters that can start a match (a regex character class, tested on one character).
        action: Key of _ACTIONS, or "skip" (no token), "push<n>" (token minus its last n characters, which are
            lexed again), "period" (token, then its final '.' lexed again), "acronym".
        gate: A regex that must be found in the current chunk (up to the next whitespace), or None.
        longest: Scan for the longest match instead of trusting Python's first match (ambiguous patterns):
            "chunk" up to the next whitespace, "tag" the ends just after a '>', "<n>" at most n characters;
            "" = no scan.
        alts: Alternatives matched separately, longest wins (used instead of regex when set).
    """

    name: str
    regex: re.Pattern[str] | None
    first: re.Pattern[str]
    action: str
    gate: re.Pattern[str] | None = None
    longest: str = ""
    alts: tuple[re.Pattern[str], ...] = ()


def _rule(
    name: str,
    main: str,
    first: str,
    action: str = "tok",
    trail: str | None = None,
    *,
    gate: str | None = None,
    longest: str = "",
    alts: Sequence[str] = (),
) -> _Rule:
    pattern = _jf(main)
    if trail is not None:
        pattern = f"(?:{pattern})(?=({_jf(trail)}))"
    return _Rule(
        name=name,
        regex=None if alts else re.compile(pattern),
        first=re.compile(first),
        action=action,
        gate=None if gate is None else re.compile(gate),
        longest=longest,
        alts=tuple(re.compile(_jf(a)) for a in alts),
    )


_L1 = f"[{_LETTER_BODY}&]"  # first character of WORD (a letter, or '&' of an entity like &eacute;)
_J1 = f"[{_JLETTER_BODY}{_DIGIT_BODY}]"
_APOS1 = "['\u0092\u2019&]"
_ANY = r"[\s\S]"

# fmt: off
_RULES: list[_Rule] = [
    _rule("c++", r"c[+][+]", "[cC]"),
    _rule("c#", r"(c|f)#", "[cCfF]"),
    _rule("cannot", r"cannot", "[cC]", "push3"),
    _rule("'twas", r"'twas", "'", "push3"),
    _rule("'tis", r"'tis", "'", "push2"),
    _rule("gonna", r"gonna|gotta|lemme|gimme|wanna", "[gGlLwW]", "push2"),
    _rule("SGML", r"{SGML}", "<", "nbsp", longest="tag"),
    _rule("SPMDASH", r"&(mdash|ndash|MD);|[\u0096\u0097\u2013\u2014\u2015]", "[&\u0096\u0097\u2013\u2014\u2015]",
          "mdash"),
    _rule("SPAMP", r"&amp;", "&", "amp"),
    _rule("SPPUNC", r"&(HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);", "&"),
    _rule("WORD/REDAUX", r"{WORD}", _L1, "soft", r"{REDAUX}", gate="['\u0092\u2019&]"),
    _rule("SWORD/SREDAUX", r"{SWORD}", "[A-Za-z\u00ad]", "soft", r"{SREDAUX}", gate="[nN]"),
    _rule("WORD", r"{WORD}", _L1, "soft"),
    _rule("APOWORD", "", f"[{_JLETTER_BODY}'\u0092\u2019&]", gate="['\u0092\u2019&`\u0091\u2018\u201b]", alts=[
        r"{APOS}n({APOS})?", r"[lLdDjJ]{APOS}", r"Dunkin{APOS}", r"somethin{APOS}", r"ol{APOS}", r"{APOS}em",
        r"[A-HJ-XZn]{APOSETCETERA}{JLETTER}{2}{JLETTER}*", r"{APOS}[2-9]0s", r"{APOS}till?",
        r"{JLETTER}{JLETTER}*[aeiouyAEIOUY]{APOSETCETERA}[aeiouA-Z]{JLETTER}*", r"{APOS}cause", r"cont'd\.?", r"'twas",
        r"nor'easter", r"c'mon", r"e'er", r"s'mores", r"ev'ry", r"li'l", r"nat'l", r"O{APOSETCETERA}o"]),
    _rule("APOWORD2", r"y{APOS}", "[yY]", "tok", r"{JLETTER}"),
    _rule("FULLURL", r"https?://[^ \t\n\f\r\"<>|(){}]+[^ \t\n\f\r\"<>|\.!\?(){},\-]", "[hH]"),
    _rule("LIKELYURL", "", r"[^ \t\n\f\r\"`'<>|.!?(){},\-_$]", gate=r"(?i:www\.|\.(?:com|net|org|edu))",
          longest="chunk", alts=[
        r"(www\.([^ \t\n\f\r\"<>|\.!\?(){},]+\.)+[a-zA-Z]{2,4}){URLPATH}?",
        r"(([^ \t\n\f\r\"`'<>|\.!\?(){},-_$]+\.)+(com|net|org|edu)){URLPATH}?"]),
    _rule("EMAIL", r"(&lt;|<)?[a-zA-Z0-9][^ \t\n\f\r\"<>|()\u00a0{}]*@([^ \t\n\f\r\"<>|(){}\.\u00a0]+\.)*"
                   r"([^ \t\n\f\r\"<>|(){}\.\u00a0]+)(&gt;|>)?", "[&<a-zA-Z0-9]", gate="@", longest="chunk"),
    _rule("TWITTER", r"@[a-zA-Z_][a-zA-Z_0-9]*|#({LETTER})+", "[@#]"),
    _rule("REDAUX/", r"{REDAUX}", _APOS1, "right", r"[^A-Za-z]"),
    _rule("SREDAUX/", r"{SREDAUX}", "[nN]", "right", r"[^A-Za-z]"),
    _rule("DATE", r"{DATE}", f"[{_DIGIT_BODY}]"),
    _rule("NUMBER", r"{NUMBER}", f"[-+.:,\u00ad\u066b\u066c{_DIGIT_BODY}]", "soft"),
    _rule("SUBSUPNUM", r"[\u207a\u207b\u208a\u208b]?([\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+|[\u2080-\u2089]+)",
          "[\u207a\u207b\u208a\u208b\u2070\u00b9\u00b2\u00b3\u2074-\u2079\u2080-\u2089]"),
    _rule("FRAC", r"{FRAC}", f"[{_DIGIT_BODY}]", "nbsp", longest="16"),
    _rule("FRAC2", r"[\u00bc\u00bd\u00be\u2153-\u215e]", "[\u00bc\u00bd\u00be\u2153-\u215e]", "fraction"),
    _rule("TBSPEC", r"\-(RRB|LRB|RCB|LCB|RSB|LSB)\-|C\.D\.s|pro\-|anti\-|S(&amp;|&)P\-500|S(&amp;|&)Ls|Cap{APOS}n|"
                    r"c{APOS}est", "[-cCsSpPaA]", "amp"),
    _rule("THING3", r"{THING3}", "[A-Za-z0-9]", gate="/"),
    _rule("DOLSIGN", r"[A-Z]*\$|#", "[A-Z$#]"),
    _rule("DOLSIGN2", r"[\u00a2\u00a3\u00a4\u00a5\u0080\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6]",
          "[\u00a2\u00a3\u00a4\u00a5\u0080\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6]", "currency"),
    _rule("ACRONYM", r"{ACRO}\.", "[A-Za-z]", "acronym", r"{SPACENLS}(" + _ACRONYM_NEXT + r"){SPACENL}", gate=r"\."),
    _rule("ABBREV3", r"{ABBREV3}", "[cCfFpPnNaAbBoO]", "tok", r"{SPACENL}?{DIGIT}", gate=r"\."),
    _rule("pty.", r"(pt[eyEY]|co)\.", "[pPcC]", "tok", r"{SPACE}(ltd|lim)", gate=r"\."),
    _rule("ABBREV1/SENTEND", r"{ABBREV1}", "[A-Za-z]", "period", r"{SENTEND}", gate=r"\."),
    _rule("ABBREV1/2", r"{ABBREV1}", "[A-Za-z]", "tok", _ANY + _ANY, gate=r"\."),
    _rule("ABBREV1", r"{ABBREV1}", "[A-Za-z]", "period", gate=r"\."),
    _rule("ABBREV2", r"{ABBREV4}\.", "[A-Za-z]", gate=r"\.", longest="chunk"),
    _rule("ABBREV4/SPACE", r"{ABBREV4}", "[A-Za-z]", "tok", r"{SPACE}"),
    _rule("ACRO/", r"{ACRO}", "[A-Za-z]", "tok", r"{SPACENL}"),
    _rule("TBSPEC2/", r"{APOS}[0-9][0-9]", _APOS1, "tok", r"{SPACENL}"),
    _rule("FILENAME/", r"{FILENAME}", f"[{_LETTER_BODY}{_DIGIT_BODY}&]", "tok", r"{SPACENL}|[\.\?!,]", gate=r"\."),
    _rule("WORD./", r"{WORD}\.", _L1, "soft", r"{INSENTP}", gate=r"\."),
    _rule("PHONE", r"{PHONE}", r"[(+0-9]", "phone", longest="32"),
    _rule("DBLQUOT/", r"{DBLQUOT}", '["&]', "left", r"[A-Za-z0-9$]"),
    _rule("DBLQUOT", r"{DBLQUOT}", '["&]', "right"),
    _rule("DEL", "\x7f", "\x7f", "skip"),
    _rule("LESSTHAN", r"<|&lt;", "[<&]", "lt"),
    _rule("GREATERTHAN", r">|&gt;", "[>&]", "gt"),
    _rule("SMILEY", r"{SMILEY}", "[<>:;=]", "parens", r"[^A-Za-z0-9]"),
    _rule("ASIANSMILEY", r"{ASIANSMILEY}", r"[\^xX=~<>'(\-]", "parens"),
    _rule("brackets", r"[{}\[\]()]", r"[{}\[\]()]", "bracket"),
    _rule("HYPHENS", r"\-+", "-", "hyphens"),
    _rule("LDOTS", r"\.{3,5}|(\.[ \u00a0]){2,4}\.|[\u0085\u2026]", "[.\u0085\u2026]", "ellipsis"),
    _rule("FNMARKS", r"@+|#+|_+", "[@#_]"),
    _rule("ASTS", r"\*+|(\\\*){1,3}", r"[*\\]"),
    _rule("INSENTP", r"{INSENTP}", "[,;:\u3001]"),
    _rule("?!", r"[\?!]+", "[?!]"),
    _rule("stops", r"[\.\u00a1\u00bf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002]",
          "[.\u00a1\u00bf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002]"),
    _rule("=", "=", "="),
    _rule("/", "/", "/"),
    _rule("HTHING./", r"{HTHING}\.", "[A-Za-z0-9]", "soft", r"{INSENTP}", gate="-"),
    _rule("HTHING", r"{HTHING}", "[A-Za-z0-9]", "soft", gate="-", longest="chunk"),
    _rule("THING./", r"{THING}\.", _J1, "tok", r"{INSENTP}", gate=r"\."),
    _rule("THING", r"{THING}", _J1),
    _rule("THINGA./", r"{THINGA}\.", "[A-Z]", "amp", r"{INSENTP}", gate=r"\."),
    _rule("THINGA", r"{THINGA}", "[A-Z]", "amp", gate="[+&]"),
    _rule("'/", "'", "'", "left", r"[A-Za-z][^ \t\n\r\u00a0]"),
    _rule("REDAUX", r"{REDAUX}", _APOS1, "right"),
    _rule("SREDAUX", r"{SREDAUX}", "[nN]", "right"),
    _rule("QUOTES", "", "['\u0092\u2019&`\u2018\u201a\u201b\u201c\u201d\u0091\u0093\u0094\u201e\u201f\u2039\u203a"
                        "\u00ab\u00bb]", "right", alts=[r"{APOS}", r"''", r"{QUOTECHARS}{1,2}"]),
    _rule("FAKEDUCKFEET", r"<<|>>", "[<>]"),
    _rule("MISCSYMBOL", r"{MISCSYMBOL}", _MACROS["MISCSYMBOL"]),
    _rule("spaces", r"\x00|[ \t\u00a0\u2000-\u200a\u3000]+|[\u200b\u200e\u200f\ufeff]",
          "[\x00 \t\u00a0\u2000-\u200a\u3000\u200b\u200e\u200f\ufeff]", "skip"),
    _rule("&nbsp;", r"&nbsp;", "&", "skip"),
]
# fmt: on

_ASSIMILATIONS = frozenset(["cannot", "gonna", "gotta", "lemme", "gimme", "wanna"])
# A plain word before a space or before one of .,!?;: and a space is always one WORD token (unless it is an assimilation
# like "gonna", or the word and its period form an abbreviation).
_FAST_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?=([.,!?;:]?)(?:[ \t\n]|\Z))")
_ABBREVIATION = re.compile("|".join(_jf(x) for x in [r"{ABBREV1}", r"{ABBREV4}\.", r"{ABBREV3}", r"(pt[eyEY]|co)\."]))
_FAST_SPACE = re.compile("[ \t][ \t\u00a0\u2000-\u200a\u3000]*")  # a SPACES run that no other rule can start
_CHUNK_END = re.compile(r"[ \t\n\r\f]")
_RULES_BY_CHAR: dict[str, tuple[_Rule, ...]] = {}


def _rules_for(ch: str) -> tuple[_Rule, ...]:
    """The rules whose match can start with this character (in the lexer's order)."""
    rules = _RULES_BY_CHAR.get(ch)
    if rules is None:
        rules = tuple(rule for rule in _RULES if rule.first.match(ch))
        _RULES_BY_CHAR[ch] = rules
    return rules


def _match(rule: _Rule, s: str, pos: int, end: int, chunk_end: int) -> tuple[int, int] | None:
    """Longest match of one rule at pos.

    Args:
        rule: The rule.
        s: Caption followed by what the jar would see after it ("\\n" + next captions, or nothing at end of file).
        pos: Start position.
        end: End of the caption in s (a token never extends beyond it).
        chunk_end: Position of the next whitespace (for the gates).

    Returns:
        (length including the trailing context, end of the token proper), or None.
    """
    if rule.gate is not None and rule.gate.search(s, pos, chunk_end) is None:
        return None
    if rule.alts:
        best = 0
        for rx in rule.alts:
            best = max(best, _longest(rx, rule.longest, s, pos, end, chunk_end))
        return (best - pos, best) if best > pos else None
    rx = rule.regex
    if rx.groups:  # trailing context in group 1
        m = rx.match(s, pos)
        if m is None or m.end() > end:
            return None
        return m.end(1) - pos, m.end()
    stop = _longest(rx, rule.longest, s, pos, end, chunk_end)
    return (stop - pos, stop) if stop > pos else None


def _longest(rx: re.Pattern[str], scan: str, s: str, pos: int, end: int, chunk_end: int) -> int:
    """End of the longest match of rx at pos (0 if none); without `scan`, Python's first match is trusted."""
    m = rx.match(s, pos, end)
    if m is None:
        return 0
    stop = m.end()
    if not scan:
        return stop
    if scan == "tag":  # an SGML tag ends with '>'
        e = s.rfind(">", stop, end)
        while e >= stop:
            if rx.fullmatch(s, pos, e + 1) is not None:
                return e + 1
            e = s.rfind(">", stop, e)
        return stop
    limit = chunk_end if scan == "chunk" else min(end, pos + int(scan))
    for e in range(limit, stop, -1):
        if rx.fullmatch(s, pos, e) is not None:
            return e
    return stop


def _lex(s: str, end: int) -> list[str]:
    """The jar's tokens (before lower-casing) for s[:end]; s[end:] is only looked at by trailing contexts."""
    tokens: list[str] = []
    pos = 0
    while pos < end:
        m = _FAST_WORD.match(s, pos)
        if (
            m is not None
            and m.end() <= end
            and m.group().lower() not in _ASSIMILATIONS
            and (m.group(1) != "." or _ABBREVIATION.fullmatch(s, pos, m.end() + 1) is None)
        ):
            tokens.append(m.group())
            pos = m.end()
            continue
        m = _FAST_SPACE.match(s, pos, end)
        if m is not None:
            pos = m.end()
            continue
        chunk = _CHUNK_END.search(s, pos, end)
        chunk_end = end if chunk is None else chunk.start()
        best: tuple[int, int] | None = None
        best_rule: _Rule | None = None
        for rule in _rules_for(s[pos]):
            found = _match(rule, s, pos, end, chunk_end)
            if found is not None and (best is None or found[0] > best[0]):
                best, best_rule = found, rule
        if best is None or best_rule is None:  # untokenizable: deleted
            pos += 1
            continue
        pos = _apply(best_rule.action, s, pos, best[1], tokens)
    return tokens


def _apply(action: str, s: str, start: int, stop: int, tokens: list[str]) -> int:
    """Run a rule's action on s[start:stop], append its token (if any); returns where lexing resumes."""
    text = s[start:stop]
    if action == "skip":
        return stop
    if action.startswith("push"):
        back = int(action[4:])
        tokens.append(text[:-back])
        return stop - back
    if action == "period":  # the abbreviation keeps its period and a '.' token follows
        tokens.append(text)
        return stop - 1
    if action == "acronym":  # "I." before a sentence start -> "I" + "."; "U.S." -> "U.S." + "."
        if len(text) == 2:
            tokens.append(text[0])
            return start + 1
        tokens.append(text)
        return stop - 1
    tokens.append(_ACTIONS[action](text))
    return stop


# ----------------------------------------------------------------------------------------------------------------
# Public API.
_NEUTRAL_FOLLOWING = "\n"  # a newline, then a line that starts with a lower-case letter (or nothing)
_CONTEXT_CHARS = 256  # how much of the next captions the look-ahead rules may see


def _clean(caption: str) -> str:
    """Line breaks inside a caption count as spaces (the wrapper only replaces '\\n')."""
    return _LINE_BREAKS.sub(" ", caption) if _LINE_BREAKS.search(caption) else caption


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


_SURROGATES = re.compile("[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")


def _to_surrogates(m: re.Match[str]) -> str:
    code = ord(m.group()) - 0x10000
    return chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF))


def _from_surrogates(m: re.Match[str]) -> str:
    pair = m.group()
    if len(pair) == 1:  # half a pair: Java's UTF-8 encoder writes '?'
        return "?"
    return chr(0x10000 + ((ord(pair[0]) - 0xD800) << 10) + ord(pair[1]) - 0xDC00)


def _utf16(text: str) -> str:
    """Characters outside the BMP as two surrogate code points, as Java's lexer sees them."""
    return _ASTRAL.sub(_to_surrogates, text)


# Upper-case letters that Python (Unicode 14+) lower-cases but Java 17 (Unicode 13) does not; the lexer only keeps
# them inside URL / e-mail tokens.
_JAVA_UNCASED = re.compile("[\u2c2f\ua7c0\ua7d0\ua7d6\ua7d8]")


def _lower(tok: str) -> str:
    """Java's toLowerCase(Locale.ENGLISH) on one token."""
    if _JAVA_UNCASED.search(tok) is None:
        return tok.lower()
    return "".join(ch if _JAVA_UNCASED.match(ch) else ch.lower() for ch in tok)


def _lower_tokens(caption: str, following: str) -> list[str]:
    """The jar's lower-cased tokens for one cleaned caption."""
    if _ASTRAL.search(caption) is None and _ASTRAL.search(following) is None:
        return [_lower(tok) for tok in _lex(caption + following, len(caption))]
    caption16 = _utf16(caption)
    tokens = _lex(caption16 + _utf16(following), len(caption16))
    return [_lower(_SURROGATES.sub(_from_surrogates, tok)) for tok in tokens]


# Fast path for captions of plain words: ASCII letters/digits, single hyphens inside a word, each word optionally
# followed by one of .,!?;: (or such a mark on its own, as in COCO's "a dog on a bed ."), separated by spaces/tabs.
# Each such word is one token and the marks are filtered (runs of lone periods make '...' tokens, filtered too),
# whatever follows the caption; exceptions fall back to the lexer: an assimilation ("gonna"), an abbreviation before
# its period ("Mr."), a number followed by a word starting with a digit (phone numbers like "555 1234 567" are one
# token).
_SIMPLE = re.compile(r"[ \t]*(?:(?:[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*[.,!?;:]?|[.,!?;:])(?:[ \t]+|\Z))*")
_SIMPLE_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_ANY_DIGIT = re.compile("[0-9]")
_SIMPLE_DOTTED = re.compile(r"(?<![A-Za-z0-9-])[A-Za-z0-9]+\.")  # (simple caption) unhyphenated words before a period
_SIMPLE_NUMBERS = re.compile(r"(?<![A-Za-z0-9])[0-9]+[ \t]+[0-9]")  # numbers in a row: may be one phone number


@lru_cache(maxsize=1 << 14)
def _is_abbreviation(word: str) -> bool:
    """Whether a word with its period ("Mr.", "etc.", "U.S."... ) is one of the lexer's abbreviations."""
    return _ABBREVIATION.fullmatch(word) is not None


def _simple_line(caption: str) -> str | None:
    """The result for a caption of plain words (fast path), or None if the caption needs the full lexer."""
    if _SIMPLE.fullmatch(caption) is None:
        return None
    words = _SIMPLE_WORD.findall(caption.lower())
    if not _ASSIMILATIONS.isdisjoint(words):
        return None
    if "." in caption and any(map(_is_abbreviation, _SIMPLE_DOTTED.findall(caption))):
        return None
    if _ANY_DIGIT.search(caption) is not None and _SIMPLE_NUMBERS.search(caption) is not None:
        return None
    return " ".join(words)


# The fast path's rules again, as scans over many captions joined by newlines (same decisions as `_simple_line`, which
# the tests check): what rejects a caption, and the words before a period (abbreviation candidates). Every pattern
# starts with a character class or a literal, so the regex engine jumps from candidate to candidate.
_NOT_SIMPLE = (
    re.compile(r"[^A-Za-z0-9 \t\n.,!?;:-]"),  # a character the fast path does not handle
    re.compile(r"-(?:(?<![A-Za-z0-9]-)|(?![A-Za-z0-9]))"),  # a hyphen that does not join two words
    re.compile(r"[.,!?;:](?![ \t\n]|\Z)"),  # a mark that does not end a token (".5", "a,b", "!!")
    re.compile(r"[0-9](?<![A-Za-z0-9][0-9])[0-9]*[ \t]+[0-9]"),  # numbers in a row: may be one phone number
)
_REVERSED_DOTTED = re.compile(r"\.[A-Za-z0-9]+(?![A-Za-z0-9-])")  # "word." read backwards: a period first
_MARK = re.compile("[.,!?;:]")


def _dotted_words(text: str) -> Iterator[tuple[int, str]]:
    """(start, "word.") of every unhyphenated word directly followed by a period (the scan runs on the reversed text,
    where the period comes first)."""
    size = len(text)
    for m in _REVERSED_DOTTED.finditer(text[::-1]):
        yield size - m.end(), m.group()[::-1]


def _simple_lines(captions: Sequence[str]) -> list[str | None]:
    """`_simple_line` of many cleaned captions at once: a few regex scans over all of them instead of several calls
    per caption.

    Args:
        captions: Cleaned captions (no line breaks).

    Returns:
        Per caption, the fast path's result, or None where the full lexer is needed.
    """
    if not captions:
        return []
    text = "\n".join(captions)
    starts = list(accumulate((len(c) + 1 for c in captions), initial=0))  # where each caption starts in text
    rejected: set[int] = set()
    for pattern in _NOT_SIMPLE:
        rejected.update(bisect_right(starts, m.start()) - 1 for m in pattern.finditer(text))
    rejected.update(bisect_right(starts, pos) - 1 for pos, word in _dotted_words(text) if _is_abbreviation(word))
    out: list[str | None] = []
    for i, line in enumerate(_MARK.sub("", text.lower()).split("\n")):
        words = line.split()
        simple = i not in rejected and _ASSIMILATIONS.isdisjoint(words)
        out.append(" ".join(words) if simple else None)
    return out


def _lexed_line(caption: str, following: str) -> str:
    """The wrapper's result for one cleaned caption from the full lexer: lower-cased tokens, right-stripped, split,
    filtered, joined."""
    line = " ".join(_lower_tokens(caption, following))
    return " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)


@lru_cache(maxsize=1 << 16)
def _line(caption: str, following: str) -> str:
    """The wrapper's result for one cleaned caption (fast path when it applies), cached across calls."""
    simple = _simple_line(caption)
    return _lexed_line(caption, following) if simple is None else simple


def ptb_tokens(caption: str, following: str = _NEUTRAL_FOLLOWING) -> list[str]:
    """The jar's lower-cased tokens for one caption, before the punctuation filter.

    Args:
        caption: One caption (line breaks inside it count as spaces).
        following: What the jar reads after the caption: "\\n" plus the next captions, or "" at end of file.
            Only a few look-ahead rules use it (see the module docstring).

    Returns:
        Tokens, e.g. ``["a", "man", "-lrb-", "in", "red", "-rrb-", "."]``.
    """
    return _lower_tokens(_clean(caption), following)


def ptb_tokenize(caption: str) -> str:
    """What pycocoevalcap's PTBTokenizer returns for one caption.

    The caption is tokenized as if a newline and a caption starting with a lower-case letter followed it (see the
    module docstring for the two rules that look at the next caption).

    Args:
        caption: Raw caption text.

    Returns:
        Lower-cased tokens joined by single spaces, the 17 punctuation tokens removed ("" if nothing is left).

    Example:
        >>> ptb_tokenize("A man (in red) can't ride a 10-speed bike.")
        "a man -lrb- in red -rrb- ca n't ride a 10-speed bike"
    """
    if not isinstance(caption, str):
        raise TypeError(f"a caption must be a string, got {type(caption).__name__}")
    return _line(_clean(caption), _NEUTRAL_FOLLOWING)


def tokenize_captions(captions: Mapping[K, Sequence[str]]) -> dict[K, list[str]]:
    """pycocoevalcap's ``PTBTokenizer().tokenize`` for plain strings: image id -> tokenized captions.

    The official wrapper takes ``{id: [{"caption": str}, ...]}``; here the values are the caption strings. Captions
    are read in the wrapper's order (dict order, then list order) so that the look-ahead at each line end sees the
    same neighbour as in the official file (the last caption is at end of file). Unlike the wrapper, line breaks
    inside a caption (``\\r``, U+2028, ...) count as spaces and do not shift later captions to other images.

    Args:
        captions: Image id -> captions.

    Returns:
        Image id -> tokenized captions (same order; an id with an empty list maps to an empty list).

    Raises:
        TypeError: If a caption is not a string or a value is a bare string instead of a sequence of captions.
    """
    lines = iter(_file_lines(_flat_captions(captions)))
    return {key: [next(lines) for _ in caps] for key, caps in captions.items()}


def _flat_captions(captions: Mapping[K, Sequence[str]]) -> list[str]:
    """All captions, cleaned, in the wrapper's file order; TypeError for anything but sequences of strings."""
    flat: list[str] = []
    for key, caps in captions.items():
        if isinstance(caps, str):
            raise TypeError(f"captions of {key!r} must be a sequence of strings, not a string")
        flat.extend(caps)
    try:
        text = "".join(flat)  # one check of all captions: join accepts only strings
    except TypeError:
        for key, caps in captions.items():
            for cap in caps:
                if not isinstance(cap, str):
                    raise TypeError(f"a caption of {key!r} must be a string, got {type(cap).__name__}") from None
        raise
    return flat if _LINE_BREAKS.search(text) is None else [_clean(cap) for cap in flat]


def _file_lines(flat: Sequence[str]) -> list[str]:
    """The wrapper's output line for each caption of the file.

    The distinct captions go through the fast path together (its result does not depend on the neighbours); the
    others are lexed once per distinct (caption, look-ahead) pair. Nothing is cached across calls, so what one
    evaluation costs does not depend on what was evaluated before.
    """
    distinct = list(dict.fromkeys(flat))
    simple = dict(zip(distinct, _simple_lines(distinct)))
    lexed: dict[tuple[str, str], str] = {}
    lines: list[str] = []
    for i, cap in enumerate(flat):
        line = simple[cap]
        if line is None:
            key = (cap, _context(flat, i))
            line = lexed.get(key)
            if line is None:
                line = lexed[key] = _lexed_line(*key)
        lines.append(line)
    return lines


def _context(flat: Sequence[str], i: int) -> str:
    """What the lexer may need to see after caption i: '' at the end of the file, '\\n' and the next captions after
    a caption ending in '.', else just '\\n'."""
    if i == len(flat) - 1:
        return ""
    if flat[i].rstrip().endswith("."):
        return _following(flat, i)
    return "\n"


def _following(flat: Sequence[str], i: int) -> str:
    """'\\n' + the next captions as in the wrapper's file, up to _CONTEXT_CHARS characters ('' after the last).

    Only a caption ending in '.' needs more than the distinction "newline" / "end of file": the look-ahead of an
    abbreviation or acronym reads the start of the next line(s).
    """
    parts: list[str] = []
    size = 0
    j = i + 1
    while j < len(flat) and size < _CONTEXT_CHARS:
        parts.append("\n" + flat[j])
        size += len(flat[j]) + 1
        j += 1
    return "".join(parts)[:_CONTEXT_CHARS]
