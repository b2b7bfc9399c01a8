"""Captions and VQA questions of the demo data set, written from a scene's layout.

Captions: five per image from several templates with synonyms (objects, colours, sizes, counts, spatial relations,
positions, the background now and then). Questions: VQA v2 style, 3-5 per image, each with ten human-like answers
(most right, a few near misses). Questions are chosen so that the answer cannot be guessed from the question: yes/no
answers are balanced per generator, and count, colour and shape answers are spread over their vocabularies by a
running balance (`QuestionBalancer`). Only numpy's `Generator` is used for randomness.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vlkd_cli.data.demo_scenes import COLORS, SHAPES, Background, Scene, SceneObject, allowed_colors

NUMBER_WORDS = {0: "zero", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
SHAPE_NOUNS: dict[str, list[tuple[str, str, float]]] = {
    "circle": [("circle", "circles", 0.7), ("dot", "dots", 0.15), ("disk", "disks", 0.15)],
    "square": [("square", "squares", 0.85), ("box", "boxes", 0.15)],
    "triangle": [("triangle", "triangles", 1.0)],
    "star": [("star", "stars", 1.0)],
    "cross": [("cross", "crosses", 0.75), ("plus sign", "plus signs", 0.25)],
    "ring": [("ring", "rings", 0.7), ("donut", "donuts", 0.15), ("hoop", "hoops", 0.15)],
}
PLURALS = {shape: nouns[0][1] for shape, nouns in SHAPE_NOUNS.items()}
SIZE_WORDS = {"small": ["small", "little", "tiny"], "medium": ["medium", "medium sized", ""], "large": ["large", "big"]}
COLOR_WORDS = {name: [name] for name in COLORS} | {"purple": ["purple", "purple", "purple", "violet"]}
GENERIC_NOUNS = [("shape", "shapes"), ("object", "objects"), ("figure", "figures")]
REL_PHRASES = {
    "left": ["to the left of", "left of", "on the left of"],
    "right": ["to the right of", "right of", "on the right of"],
    "above": ["above", "over"],
    "below": ["below", "under", "beneath"],
}
REF_RELATIONS = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
REL_MARGIN = 0.1
"""Two centres must differ by this fraction of the image side along an axis for a relation along it."""
_SHAPE_WORD = re.compile(r"\bshape\b")

QUESTION_TYPES = (
    "is there a", "is there", "are there any", "are there", "is the", "how many", "what color is the",
    "what color are the", "what is the color of the", "what shape is the", "what is the", "what color", "what",
)  # fmt: skip
NEAR_COLORS = {
    "red": ["orange", "purple", "pink"],
    "orange": ["red", "yellow", "brown"],
    "yellow": ["orange", "green", "gold"],
    "green": ["yellow", "blue", "teal"],
    "blue": ["purple", "green", "teal"],
    "purple": ["blue", "red", "pink"],
    "white": ["gray", "silver"],
    "black": ["gray", "dark blue"],
}
NEAR_SHAPES = {
    "circle": ["ring", "oval", "dot"],
    "ring": ["circle", "donut"],
    "square": ["rectangle", "diamond"],
    "triangle": ["pyramid", "arrow"],
    "star": ["cross", "flower"],
    "cross": ["plus", "star"],
}


# ----------------------------------------------------------------------------------------------- small helpers


def _pick(rng: np.random.Generator, items: Sequence, weights: Sequence[float] | None = None):
    """One element of `items` (weights need not be normalised)."""
    if weights is None:
        return items[int(rng.integers(len(items)))]
    p = np.asarray(weights, dtype=np.float64)
    return items[int(rng.choice(len(items), p=p / p.sum()))]


def _article(word: str) -> str:
    """'a' or 'an' before `word`."""
    return "an" if word[:1] in "aeiou" else "a"


def _with_article(phrase: str) -> str:
    """`phrase` with its indefinite article."""
    return f"{_article(phrase)} {phrase}"


def _join(items: list[str], rng: np.random.Generator) -> str:
    """'a', 'a and b', 'a, b and c' (sometimes with the Oxford comma)."""
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    comma = "," if rng.random() < 0.3 else ""
    return f"{', '.join(items[:-1])}{comma} and {items[-1]}"


def _noun(shape: str, rng: np.random.Generator, plural: bool = False) -> str:
    """A (sometimes synonymous) noun for `shape`."""
    single, many, _ = _pick(rng, SHAPE_NOUNS[shape], [w for *_, w in SHAPE_NOUNS[shape]])
    return many if plural else single


def _generic(rng: np.random.Generator, plural: bool = False) -> str:
    """'shape', 'object' or 'figure' (mostly 'shape')."""
    single, many = _pick(rng, GENERIC_NOUNS, [0.7, 0.2, 0.1])
    return many if plural else single


def _color_word(color: str, rng: np.random.Generator) -> str:
    """The colour's name (purple is sometimes 'violet')."""
    return _pick(rng, COLOR_WORDS[color])


def _size_word(size: str, rng: np.random.Generator) -> str:
    """An adjective for the size class ('' for some medium shapes)."""
    return _pick(rng, SIZE_WORDS[size])


def _object_phrase(obj: SceneObject, rng: np.random.Generator, size_p: float = 0.35, article: bool = True) -> str:
    """'a small red circle', 'an orange star', ..."""
    size = _size_word(obj.size, rng) if rng.random() < size_p else ""
    phrase = " ".join(w for w in (size, _color_word(obj.color, rng), _noun(obj.shape, rng)) if w)
    return _with_article(phrase) if article else phrase


def _groups(objects: list[SceneObject]) -> list[list[SceneObject]]:
    """Objects grouped by (colour, shape), in order of first appearance."""
    groups: dict[tuple[str, str], list[SceneObject]] = {}
    for obj in objects:
        groups.setdefault((obj.color, obj.shape), []).append(obj)
    return list(groups.values())


def _group_phrase(group: list[SceneObject], rng: np.random.Generator) -> str:
    """'a big red circle' or 'two red circles'."""
    if len(group) == 1:
        return _object_phrase(group[0], rng)
    count = NUMBER_WORDS[len(group)] if rng.random() < 0.9 or len(group) != 2 else "a pair of"
    return f"{count} {_color_word(group[0].color, rng)} {_noun(group[0].shape, rng, plural=True)}"


def _ordered(objects: list[SceneObject], rng: np.random.Generator) -> list[SceneObject]:
    """Objects in the order a person might list them: left to right, largest first, or any order."""
    mode = rng.random()
    if mode < 0.35:
        return sorted(objects, key=lambda o: o.center[0])
    if mode < 0.6:
        return sorted(objects, key=lambda o: -o.area)
    return [objects[int(i)] for i in rng.permutation(len(objects))]


def _relation(a: SceneObject, b: SceneObject, image_size: int) -> str | None:
    """The clear spatial relation of `a` to `b` along the dominant axis ('left', 'above', ...), or None."""
    (ax, ay), (bx, by) = a.center, b.center
    dx, dy = bx - ax, by - ay
    margin = REL_MARGIN * image_size
    if abs(dx) >= abs(dy) and abs(dx) > margin:
        return "left" if dx > 0 else "right"
    if abs(dy) > abs(dx) and abs(dy) > margin:
        return "above" if dy > 0 else "below"
    return None


def _holds(a: SceneObject, b: SceneObject, rel: str, image_size: int) -> bool | None:
    """Whether `a` is `rel` of `b` along that axis: True, False (clearly the opposite) or None (too close)."""
    (ax, ay), (bx, by) = a.center, b.center
    d = {"left": bx - ax, "right": ax - bx, "above": by - ay, "below": ay - by}[rel]
    if abs(d) <= REL_MARGIN * image_size:
        return None
    return d > 0


# ----------------------------------------------------------------------------------------------- backgrounds


def background_phrase(background: Background, rng: np.random.Generator) -> str:
    """A noun phrase describing the background, e.g. 'a striped background' (with its article).

    Args:
        background: The background.
        rng: Random generator.

    Returns:
        The phrase.
    """
    names = background.names
    if background.kind == "solid":
        options = [f"a {names[0]} background", f"a plain {names[0]} background", "a plain background"]
    elif background.kind == "gradient":
        options = [
            "a gradient background",
            f"a {names[0]} and {names[1]} gradient",
            f"a background fading from {names[0]} to {names[1]}",
        ]
    elif background.kind == "noise":
        options = [f"a grainy {names[0]} background", "a noisy background", f"a speckled {names[0]} background"]
    else:
        options = [
            "a striped background",
            f"a {names[0]} and {names[1]} striped background",
            "a background with stripes",
        ]
    return _with_article(_pick(rng, options).split(" ", 1)[1])


# ----------------------------------------------------------------------------------------------- captions


def _cap_list(scene: Scene, rng: np.random.Generator) -> str | None:
    """All objects listed: 'there are two red circles and a blue square on a white background'."""
    groups = _groups(_ordered(scene.objects, rng))
    body = _join([_group_phrase(g, rng) for g in groups], rng)
    prefix = _pick(rng, ["", "there is ", "an image of ", "a picture of ", "a drawing of ", "this image shows "],
                   [0.4, 0.2, 0.12, 0.12, 0.08, 0.08])  # fmt: skip
    if prefix == "there is " and len(groups[0]) > 1:
        prefix = "there are "
    suffix = ""
    if rng.random() < 0.25:
        suffix = f" {_pick(rng, ['on', 'against', 'over'])} {background_phrase(scene.background, rng)}"
    return f"{prefix}{body}{suffix}"


def _cap_relation(scene: Scene, rng: np.random.Generator) -> str | None:
    """'a green star to the left of a yellow ring', 'a red circle is above a blue square'."""
    objs = scene.objects
    pairs = [
        (a, b, rel)
        for a in objs
        for b in objs
        if (a.color, a.shape) != (b.color, b.shape) and (rel := _relation(a, b, scene.image_size))
    ]
    if not pairs:
        return None
    a, b, rel = pairs[int(rng.integers(len(pairs)))]
    first, second, phrase = _object_phrase(a, rng), _object_phrase(b, rng), _pick(rng, REL_PHRASES[rel])
    form = _pick(rng, ["{a} {r} {b}", "{a} is {r} {b}", "there is {a} {r} {b}"], [0.6, 0.2, 0.2])
    text = form.format(a=first, r=phrase, b=second)
    rest = [o for o in objs if o is not a and o is not b]
    if rest and rng.random() < 0.5:
        if rng.random() < 0.5:
            others = _join([_object_phrase(o, rng) for o in rest], rng)
            text += f" and {others}" if len(rest) == 1 else f", plus {others}"
        else:
            more = "another shape" if len(rest) == 1 else f"{NUMBER_WORDS[len(rest)]} other {_generic(rng, True)}"
            text += f", with {more} nearby"
    return text


def _cap_count(scene: Scene, rng: np.random.Generator) -> str | None:
    """'three shapes on a striped background', 'a group of four colorful shapes', 'a single blue star'."""
    objs = scene.objects
    n = len(objs)
    if n == 1:
        obj = objs[0]
        return _pick(rng, [
            f"a single {_object_phrase(obj, rng, article=False)}",
            f"one {_object_phrase(obj, rng, article=False)} by itself",
            f"just one {_object_phrase(obj, rng, article=False)} on {background_phrase(scene.background, rng)}",
        ])  # fmt: skip
    word = NUMBER_WORDS[n]
    options = [f"{word} {_generic(rng, True)} on {background_phrase(scene.background, rng)}",
               f"a group of {word} colorful {_generic(rng, True)}"]
    if len({o.size for o in objs}) > 1:
        options.append(f"{word} {_generic(rng, True)} of different sizes")
    if len({o.shape for o in objs}) == 1:
        colors = "the same color" if len({o.color for o in objs}) == 1 else "different colors"
        options.append(f"{word} {_noun(objs[0].shape, rng, True)} of {colors}")
    elif len({o.shape for o in objs}) == n:
        options.append(f"{word} different {_generic(rng, True)}")
    if len({o.color for o in objs}) == 1:
        options.append(f"{word} {_color_word(objs[0].color, rng)} {_generic(rng, True)}")
    return _pick(rng, options)


def _position_phrase(obj: SceneObject, image_size: int, rng: np.random.Generator) -> str:
    """'in the top left corner', 'in the middle', 'on the right', ..."""
    cx, cy = obj.center
    col = min(2, int(3 * cx / image_size))
    row = min(2, int(3 * cy / image_size))
    horiz, vert = ("left", "", "right")[col], ("top", "", "bottom")[row]
    if horiz and vert:
        corner = f"{vert} {horiz}"
        return _pick(rng, [f"in the {corner} corner", f"in the {corner}", f"near the {corner} corner"])
    if horiz:
        return _pick(rng, [f"on the {horiz}", f"on the {horiz} side", f"near the {horiz} edge"])
    if vert:
        return _pick(rng, [f"at the {vert}", f"near the {vert}", f"at the {vert} of the image"])
    return _pick(rng, ["in the middle", "in the center", "in the center of the image"])


def _cap_position(scene: Scene, rng: np.random.Generator) -> str | None:
    """'a red circle in the top left corner and a blue star on the right'."""
    objs = _ordered(scene.objects, rng)[: 1 + int(rng.integers(min(2, len(scene.objects))))]
    parts = [f"{_object_phrase(o, rng)} {_position_phrase(o, scene.image_size, rng)}" for o in objs]
    return _join(parts, rng)


def _cap_largest(scene: Scene, rng: np.random.Generator) -> str | None:
    """'a large red circle with two smaller shapes', 'a big blue star next to a small green ring'."""
    objs = sorted(scene.objects, key=lambda o: -o.area)
    big, rest = objs[0], objs[1:]
    if big.size == "large" or (rest and rest[0].area * 1.3 < big.area):
        size = _pick(rng, ["large", "big"])
    else:
        size = _size_word(big.size, rng)
    lead = _with_article(" ".join(w for w in (size, _color_word(big.color, rng), _noun(big.shape, rng)) if w))
    if not rest:
        return f"{lead} {_pick(rng, ['on', 'against'])} {background_phrase(scene.background, rng)}"
    if len(rest) == 1 and rest[0].area * 1.3 < big.area:
        other = _with_article(f"smaller {_color_word(rest[0].color, rng)} {_noun(rest[0].shape, rng)}")
        return f"{lead} {_pick(rng, ['next to', 'and', 'beside'])} {other}"
    if rest[0].area * 1.3 < big.area:
        return f"{lead} with {NUMBER_WORDS[len(rest)]} smaller {_generic(rng, True)}"
    return f"{lead} and {_join([_object_phrase(o, rng) for o in rest], rng)}"


def _cap_background(scene: Scene, rng: np.random.Generator) -> str | None:
    """'a striped background with a red circle on it', 'two stars on a plain white background'."""
    listing = _join([_group_phrase(g, rng) for g in _groups(_ordered(scene.objects, rng))], rng)
    bg = background_phrase(scene.background, rng)
    return _pick(rng, [f"{bg} with {listing} on it", f"{listing} on {bg}", f"{listing} in front of {bg}"])


def _cap_colors(scene: Scene, rng: np.random.Generator) -> str | None:
    """'red, blue and green shapes', 'a yellow and a purple star'."""
    colors = list(dict.fromkeys(o.color for o in _ordered(scene.objects, rng)))
    if len(colors) < 2:
        return None
    words = [_color_word(c, rng) for c in colors]
    if len({o.shape for o in scene.objects}) == 1 and len(colors) == len(scene.objects):
        return f"{_join([_with_article(w) for w in words], rng)} {_noun(scene.objects[0].shape, rng)}"
    return _pick(rng, [f"{_join(words, rng)} {_generic(rng, True)}", f"{_generic(rng, True)} in {_join(words, rng)}",
                       f"some {_join(words, rng)} {_generic(rng, True)}"])  # fmt: skip


CAPTION_TEMPLATES: list[tuple[Callable[[Scene, np.random.Generator], str | None], float]] = [
    (_cap_list, 2.0),
    (_cap_relation, 1.6),
    (_cap_count, 1.0),
    (_cap_position, 1.0),
    (_cap_largest, 1.0),
    (_cap_background, 0.8),
    (_cap_colors, 0.7),
]


def _finish(text: str, rng: np.random.Generator) -> str:
    """Human-like surface: a capital first letter most of the time, a final period some of the time."""
    if rng.random() < 0.6:
        text = text[0].upper() + text[1:]
    return text + "." if rng.random() < 0.35 else text


def make_captions(scene: Scene, rng: np.random.Generator, count: int = 5) -> list[str]:
    """`count` distinct captions of a scene from different templates.

    Args:
        scene: A rendered scene (object boxes known).
        rng: Random generator of the image's captions.
        count: Number of captions.

    Returns:
        The captions.
    """
    weights = np.asarray([w for _, w in CAPTION_TEMPLATES])
    order = [int(i) for i in rng.choice(len(weights), size=len(weights), replace=False, p=weights / weights.sum())]
    captions: list[str] = []
    seen: set[str] = set()
    attempt = 0
    while len(captions) < count:
        template = CAPTION_TEMPLATES[order[attempt % len(order)]][0]
        attempt += 1
        text = template(scene, rng)
        if text is None or text in seen:
            if attempt > 200:
                raise RuntimeError("could not write distinct captions for a demo image")
            continue
        seen.add(text)
        captions.append(_finish(text, rng))
    return captions


# ----------------------------------------------------------------------------------------------- questions


@dataclass(frozen=True)
class Candidate:
    """A question that can be asked about an image and its one right answer.

    Attributes:
        question: The question text.
        answer: The right answer (normalized).
        weight: Preference among candidates of the same group and answer; a group is chosen with the largest
            weight among its candidates.
        group: Balancing stream inside a generator (e.g. the number asked in "are there two circles?"); answers are
            balanced within each group so that the question's wording does not give the answer away.
    """

    question: str
    answer: str
    weight: float = 1.0
    group: str = ""


@dataclass
class QuestionBalancer:
    """Running answer counts per generator, used to keep every generator's answers balanced.

    A generator first picks one of the candidate groups at random, then, among the answers it can ask about in
    that group, one whose count so far is the lowest (ties at random). Over many images this makes yes/no 50/50,
    counts 1..4 about uniform and colours and shapes about uniform, so the answer prior per question type stays weak.
    """

    counts: dict[str, Counter] = field(default_factory=dict)

    def choose(self, generator: str, candidates: list[Candidate], rng: np.random.Generator) -> Candidate:
        """Pick a candidate whose answer is the least used so far in its group of `generator`, and count it."""
        groups = sorted({c.group for c in candidates})
        group = _pick(rng, groups, [max(c.weight for c in candidates if c.group == g) for g in groups])
        candidates = [c for c in candidates if c.group == group]
        counter = self.counts.setdefault(f"{generator}|{group}", Counter())
        answers = sorted({c.answer for c in candidates})
        least = min(counter[a] for a in answers)
        answer = _pick(rng, [a for a in answers if counter[a] == least])
        counter[answer] += 1
        pool = [c for c in candidates if c.answer == answer]
        return _pick(rng, pool, [c.weight for c in pool])


def question_type(question: str) -> str:
    """The VQA v2 style question type: the longest known prefix of the question's words.

    Args:
        question: The question text.

    Returns:
        E.g. "is there a", "how many", "what color is the".
    """
    words = question.lower().rstrip("?").split()
    best = ""
    for prefix in QUESTION_TYPES:
        parts = prefix.split()
        if words[: len(parts)] == parts and len(prefix) > len(best):
            best = prefix
    return best or "none of the above"


def answer_type(answer: str) -> str:
    """'yes/no', 'number' or 'other'."""
    if answer in ("yes", "no"):
        return "yes/no"
    return "number" if answer.isdigit() else "other"


class _Refs:
    """Unambiguous referring expressions for the objects of one scene."""

    def __init__(self, scene: Scene, rng: np.random.Generator) -> None:
        self.objs = scene.objects
        self.size = scene.image_size
        self.rng = rng

    def _unique(self, obj: SceneObject, key: Callable[[SceneObject], tuple]) -> bool:
        return sum(key(o) == key(obj) for o in self.objs) == 1

    def _size_adj(self, obj: SceneObject) -> str:
        return {"small": "small", "medium": "medium", "large": _pick(self.rng, ["big", "large"])}[obj.size]

    def by_shape(self, obj: SceneObject) -> str | None:
        """'the star' / 'the big star' (never names the colour)."""
        if self._unique(obj, lambda o: (o.shape,)):
            return f"the {obj.shape}"
        if self._unique(obj, lambda o: (o.shape, o.size)):
            return f"the {self._size_adj(obj)} {obj.shape}"
        return None

    def by_color(self, obj: SceneObject) -> str | None:
        """'the red shape' / 'the small red object' (never names the shape)."""
        noun = _generic(self.rng)
        if self._unique(obj, lambda o: (o.color,)):
            return f"the {obj.color} {noun}"
        if self._unique(obj, lambda o: (o.color, o.size)):
            return f"the {self._size_adj(obj)} {obj.color} {noun}"
        return None

    def full(self, obj: SceneObject) -> str | None:
        """'the star' / 'the red star' / 'the big red star'."""
        if self._unique(obj, lambda o: (o.shape,)):
            return f"the {obj.shape}"
        if self._unique(obj, lambda o: (o.color, o.shape)):
            return f"the {obj.color} {obj.shape}"
        if self._unique(obj, lambda o: (o.color, o.shape, o.size)):
            return f"the {self._size_adj(obj)} {obj.color} {obj.shape}"
        return None

    def relational(self) -> list[tuple[SceneObject, str]]:
        """(object, 'the shape to the left of the red star') for each object singled out by a relation."""
        out = []
        for anchor in self.objs:
            anchor_ref = self.full(anchor)
            if anchor_ref is None:
                continue
            for rel in REL_PHRASES:
                verdicts = [(o, _holds(o, anchor, rel, self.size)) for o in self.objs if o is not anchor]
                hits = [o for o, v in verdicts if v]
                if len(hits) == 1 and all(v is not None for _, v in verdicts):
                    out.append((hits[0], f"the {_generic(self.rng)} {REF_RELATIONS[rel]} {anchor_ref}"))
        return out

    def extreme(self) -> list[tuple[SceneObject, str]]:
        """(object, 'the leftmost shape' / 'the largest shape' ...) where the extreme is clear."""
        if len(self.objs) < 2:
            return []
        margin = REL_MARGIN * self.size
        noun = _generic(self.rng)
        tests = [
            (lambda o: o.center[0], f"the leftmost {noun}", margin),
            (lambda o: -o.center[0], f"the rightmost {noun}", margin),
            (lambda o: o.center[1], f"the {noun} at the top", margin),
            (lambda o: -o.center[1], f"the {noun} at the bottom", margin),
        ]
        out = []
        for key, phrase, gap in tests:
            ranked = sorted(self.objs, key=key)
            if key(ranked[1]) - key(ranked[0]) > gap:
                out.append((ranked[0], phrase))
        by_area = sorted(self.objs, key=lambda o: -o.area)
        if by_area[0].area >= 1.6 * by_area[1].area:
            out.append((by_area[0], f"the {_pick(self.rng, ['largest', 'biggest'])} {noun}"))
        if by_area[-1].area * 1.6 <= by_area[-2].area:
            out.append((by_area[-1], f"the smallest {noun}"))
        return out


def _group_counts(scene: Scene, shapes: Sequence[str] = ()) -> list[tuple[str, str, int]]:
    """(kind, plural noun phrase, count) for every shape and colour present (and `shapes`), plus all shapes.

    kind is "shape", "color" or "total".
    """
    objs = scene.objects
    names = dict.fromkeys([o.shape for o in objs] + list(shapes))
    groups = [("shape", PLURALS[s], sum(o.shape == s for o in objs)) for s in names]
    groups += [("color", f"{c} shapes", sum(o.color == c for o in objs)) for c in dict.fromkeys(o.color for o in objs)]
    groups += [("total", "shapes", len(objs)), ("total", "objects", len(objs))]
    return groups


def _yes_no(yes: list[str], no: list[str], group: str = "") -> list[Candidate]:
    """Candidates from yes-questions and no-questions; empty unless both exist (balance needs both)."""
    if not yes or not no:
        return []
    return [Candidate(q, "yes", group=group) for q in yes] + [Candidate(q, "no", group=group) for q in no]


def _gen_is_there(scene: Scene, rng: np.random.Generator) -> list[Candidate]:
    """'is there a red circle?' (yes/no, negatives often share the colour or the shape)."""
    objs = scene.objects
    colors = allowed_colors(scene.background)
    tail = _pick(rng, ["", " in the image", " in the picture", " here"], [0.5, 0.2, 0.2, 0.1])
    form = _pick(rng, ["full", "shape", "color"], [0.5, 0.25, 0.25])
    if form == "full":
        present = {(o.color, o.shape) for o in objs}
        absent = [(c, s) for c in colors for s in SHAPES if (c, s) not in present]
        hard = [(c, s) for c, s in absent if any(o.color == c or o.shape == s for o in objs)]
        pool = hard if hard and rng.random() < 0.7 else absent
        yes = [f"is there {_with_article(f'{c} {s}')}{tail}?" for c, s in sorted(present)]
        no = [f"is there {_with_article(f'{c} {s}')}{tail}?" for c, s in pool]
    elif form == "shape":
        yes = [f"is there {_with_article(s)}{tail}?" for s in SHAPES if any(o.shape == s for o in objs)]
        no = [f"is there {_with_article(s)}{tail}?" for s in SHAPES if all(o.shape != s for o in objs)]
    else:
        noun = _generic(rng)
        yes = [f"is there {_with_article(f'{c} {noun}')}{tail}?" for c in colors if any(o.color == c for o in objs)]
        no = [f"is there {_with_article(f'{c} {noun}')}{tail}?" for c in colors if all(o.color != c for o in objs)]
    return _yes_no(yes, no, form)


def _gen_are_there(scene: Scene, rng: np.random.Generator) -> list[Candidate]:
    """'are there two circles?' (yes/no about a count of at least two)."""
    groups = _group_counts(scene, SHAPES)
    cands = []
    # Balanced per number asked and kind of group, so that neither "four" nor "objects" hints at the answer.
    # (Totals have one count per image, so they never have both answers: they are asked by "how many".)
    for n in (2, 3, 4):
        for kind in ("shape", "color"):
            yes = [f"are there {NUMBER_WORDS[n]} {g}?" for k, g, c in groups if k == kind and c == n]
            no = [f"are there {NUMBER_WORDS[n]} {g}?" for k, g, c in groups if k == kind and abs(n - c) == 1]
            cands += _yes_no(yes, no, f"{n} {kind}")
    return cands


def _gen_are_there_any(scene: Scene, rng: np.random.Generator) -> list[Candidate]:
    """'are there any stars?', 'are there any red shapes?'."""
    objs = scene.objects
    yes = [f"are there any {PLURALS[s]}?" for s in SHAPES if any(o.shape == s for o in objs)]
    no = [f"are there any {PLURALS[s]}?" for s in SHAPES if all(o.shape != s for o in objs)]
    cands = _yes_no(yes, no, "shape")
    noun = _generic(rng, plural=True)
    colors = allowed_colors(scene.background)
    yes = [f"are there any {c} {noun}?" for c in colors if any(o.color == c for o in objs)]
    no = [f"are there any {c} {noun}?" for c in colors if all(o.color != c for o in objs)]
    return cands + _yes_no(yes, no, "color")


def _gen_is_the(scene: Scene, rng: np.random.Generator) -> list[Candidate]:
    """'is the star red?', 'is the red shape a circle?', 'is the star to the left of the ring?'."""
    refs = _Refs(scene, rng)
    objs = scene.objects
    colors = allowed_colors(scene.background)
    forms: list[tuple[list[str], list[str]]] = []
    yes, no = [], []
    for o in objs:
        if (r := refs.by_shape(o)) is not None:
            yes.append(f"is {r} {o.color}?")
            no += [f"is {r} {c}?" for c in colors if c != o.color]
    forms.append((yes, no))
    yes, no = [], []
    for o in objs:
        if (r := refs.by_color(o)) is not None:
            yes.append(f"is {r} {_with_article(o.shape)}?")
            no += [f"is {r} {_with_article(s)}?" for s in SHAPES if s != o.shape]
    forms.append((yes, no))
    yes, no = [], []
    for a in objs:
        for b in objs:
            ra, rb = refs.full(a), refs.full(b)
            if a is b or ra is None or rb is None:
                continue
            for rel in ("left", "above"):
                verdict = _holds(a, b, rel, scene.image_size)
                if verdict is not None:
                    phrase = {"left": "to the left of", "above": "above"}[rel]
                    (yes if verdict else no).append(f"is {ra} {phrase} {rb}?")
    forms.append((yes, no))
    cands = []
    for name, (yes, no) in zip(("color", "shape", "relation"), forms):
        cands += _yes_no(yes, no, name)
    return cands


def _gen_how_many(scene: Scene, rng: np.random.Generator) -> list[Candidate]:
    """'how many circles are there?', 'how many red shapes are in the picture?'."""
    tail = _pick(rng, ["are there", "are in the picture", "are in the image", "can you see", "are shown"],
                 [0.45, 0.15, 0.15, 0.15, 0.1])  # fmt: skip
    # Totals ("shapes", "objects") and specific groups are balanced separately: specific groups rarely reach 4.
    return [
        Candidate(f"how many {g} {tail}?", str(c), *((1.5, "total") if kind == "total" else (1.0, "specific")))
        for kind, g, c in _group_counts(scene)
        if c >= 1
    ]


def _referents(scene: Scene, rng: np.random.Generator, ask: str) -> list[tuple[SceneObject, str]]:
    """Referring expressions that do not give away the asked attribute ('color' or 'shape')."""
    refs = _Refs(scene, rng)
    direct = refs.by_shape if ask == "color" else refs.by_color
    out = [(o, r) for o in scene.objects if (r := direct(o)) is not None]
    out += refs.relational() + refs.extreme()
    if ask == "shape":
        out = [(o, r) for o, r in out if not any(s in r.split() for s in (o.shape, PLURALS[o.shape]))]
    else:
        out = [(o, r) for o, r in out if o.color not in r.split()]
    return out


def _gen_what_color(scene: Scene, rng: np.random.Generator) -> list[Candidate]:
    """'what color is the star?', 'what is the color of the shape left of the ring?'."""
    cands = []
    for obj, ref in _referents(scene, rng, "color"):
        text = f"what color is {ref}?" if rng.random() < 0.75 else f"what is the color of {ref}?"
        cands.append(Candidate(text, obj.color))
    return cands


def _gen_what_color_are(scene: Scene, rng: np.random.Generator) -> list[Candidate]:
    """'what color are the circles?' (all circles share one colour)."""
    cands = []
    for shape in dict.fromkeys(o.shape for o in scene.objects):
        members = [o for o in scene.objects if o.shape == shape]
        if len(members) >= 2 and len({o.color for o in members}) == 1:
            cands.append(Candidate(f"what color are the {PLURALS[shape]}?", members[0].color))
    return cands


def _gen_what_shape(scene: Scene, rng: np.random.Generator) -> list[Candidate]:
    """'what shape is the red object?', 'what shape is the shape at the top?'."""
    cands = []
    for obj, ref in _referents(scene, rng, "shape"):
        ref = _SHAPE_WORD.sub("object", ref)  # not "what shape is the shape ..."
        cands.append(Candidate(f"what shape is {ref}?", obj.shape))
    return cands


def _gen_what_is(scene: Scene, rng: np.random.Generator) -> list[Candidate]:
    """'what is the blue shape?', 'what is the leftmost object?' (answered with a shape)."""
    return [Candidate(f"what is {ref}?", obj.shape) for obj, ref in _referents(scene, rng, "shape")]


QUESTION_GENERATORS: list[tuple[str, Callable[[Scene, np.random.Generator], list[Candidate]], float]] = [
    ("is there", _gen_is_there, 0.8),
    ("are there", _gen_are_there, 0.5),
    ("are there any", _gen_are_there_any, 0.3),
    ("is the", _gen_is_the, 0.9),
    ("how many", _gen_how_many, 1.2),
    ("what color", _gen_what_color, 1.3),
    ("what color are", _gen_what_color_are, 0.3),
    ("what shape", _gen_what_shape, 0.8),
    ("what is", _gen_what_is, 0.8),
]


def make_questions(
    scene: Scene, rng: np.random.Generator, balancer: QuestionBalancer, *, min_count: int = 3, max_count: int = 5
) -> list[Candidate]:
    """3-5 distinct questions about a scene, one per generator.

    Args:
        scene: A rendered scene.
        rng: Random generator of the image's questions.
        balancer: Running answer balance shared by all images (call in image order for determinism).
        min_count: Fewest questions wanted.
        max_count: Most questions wanted.

    Returns:
        The chosen questions with their right answers.
    """
    wanted = int(rng.integers(min_count, max_count + 1))
    weights = np.asarray([w for *_, w in QUESTION_GENERATORS], dtype=np.float64)
    count = len(QUESTION_GENERATORS)
    order = rng.choice(count, size=count, replace=False, p=weights / weights.sum())
    chosen: list[Candidate] = []
    for index in order:
        name, generator, _ = QUESTION_GENERATORS[int(index)]
        asked = {c.question for c in chosen}
        cands = [c for c in generator(scene, rng) if c.question not in asked]
        if cands:
            chosen.append(balancer.choose(name, cands, rng))
        if len(chosen) == wanted:
            break
    return chosen


def _near_miss(answer: str, rng: np.random.Generator) -> str:
    """A plausible wrong answer: the other yes/no, a count off by one, a neighbouring colour, a confusable shape."""
    if rng.random() < 0.06:
        return _pick(rng, ["not sure", "unknown"])
    if answer in ("yes", "no"):
        return "no" if answer == "yes" else "yes"
    if answer.isdigit():
        n = int(answer)
        step = 1 if rng.random() < 0.85 else 2
        return str(n + step if n - step < 0 or rng.random() < 0.5 else n - step)
    if answer in NEAR_COLORS:
        near = NEAR_COLORS[answer] if rng.random() < 0.75 else [c for c in COLORS if c != answer]
        return _pick(rng, near)
    if answer in NEAR_SHAPES:
        near = NEAR_SHAPES[answer] if rng.random() < 0.75 else [s for s in SHAPES if s != answer]
        return _pick(rng, near)
    return "not sure"


def human_answers(answer: str, rng: np.random.Generator) -> list[dict]:
    """Ten VQA answers from simulated annotators: most say `answer`, up to three give a near miss.

    Args:
        answer: The right answer (normalised).
        rng: Random generator of the question.

    Returns:
        [{answer, answer_confidence, answer_id}] with answer_id 1..10; the right answer is always the most frequent.
    """
    wrong = int(rng.choice(4, p=[0.4, 0.32, 0.18, 0.1]))
    wrong_slots = set(int(i) for i in rng.choice(10, size=wrong, replace=False))
    out = []
    for slot in range(10):
        if slot in wrong_slots:
            text, conf = _near_miss(answer, rng), _pick(rng, ["yes", "maybe", "no"], [0.3, 0.45, 0.25])
        else:
            text, conf = answer, _pick(rng, ["yes", "maybe", "no"], [0.85, 0.12, 0.03])
        out.append({"answer": text, "answer_confidence": conf, "answer_id": slot + 1})
    return out
