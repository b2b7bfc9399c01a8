"""COCO caption metrics: vlkd (pure Python PTB tokenization + numpy BLEU / ROUGE-L / CIDEr-D) vs pycocoevalcap 1.2
(Java PTBTokenizer + Bleu(4) + Rouge + Cider), side by side in one process, on the same generated captions.

Generates `--images` images x 5 reference captions + 1 candidate each, deterministically (COCO-like captions built
from scene templates and paraphrases, with a few per cent of odd cases: brackets, clitics, quotes, `!!!`,
abbreviations, numbers, currency, `a/b`, line breaks). Times `caption_scores(gts, res, meteor=False)` against the
official tokenizer + scorers (median of `--runs` runs each, alternating), asserts every corpus and per-image number is
equal to 1e-9, and prints both times, the ratio and a markdown table row for docs/benchmarks.md. METEOR and SPICE
are not timed (both are the official jars in either case).

Usage:  python bench/eval_caption.py [--images 5000] [--runs 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import statistics
import time

SUBJECTS = [
    ("man", "men"), ("woman", "women"), ("dog", "dogs"), ("cat", "cats"), ("boy", "boys"), ("girl", "girls"),
    ("giraffe", "giraffes"), ("zebra", "zebras"), ("elephant", "elephants"), ("surfer", "surfers"),
    ("skateboarder", "skateboarders"), ("horse", "horses"), ("bus", "buses"), ("train", "trains"),
    ("person", "people"), ("bird", "birds"), ("child", "children"), ("baseball player", "baseball players"),
]  # fmt: skip
ADJECTIVES = [
    "young", "old", "small", "large", "white", "black", "brown", "red", "little", "tall", "happy", "big", "blue",
    "green", "yellow", "gray", "wet", "dirty", "shiny", "cute", "striped", "wooden", "smiling",
]  # fmt: skip
ACTIONS = [
    "riding", "holding", "standing next to", "sitting on", "walking down", "looking at", "playing with",
    "eating", "laying on", "flying over", "carrying", "waiting for", "crossing", "jumping over", "leaning against",
    "pulling", "pointing at", "posing with", "sitting in front of", "walking towards",
]  # fmt: skip
OBJECTS = [
    "wave", "skateboard", "frisbee", "bench", "pizza", "laptop", "street", "kite", "banana", "surfboard",
    "tennis racket", "umbrella", "cell phone", "fire hydrant", "train track", "fence", "plate of food", "clock",
    "stop sign", "snowboard", "sandwich", "bicycle", "motorcycle", "truck", "tree", "table", "couch", "bed",
]  # fmt: skip
PLACES = [
    "on the beach", "in a field", "in the kitchen", "at the park", "on a city street", "in the snow", "near the water",
    "in a living room", "in front of a building", "at the zoo", "on a dirt road", "in a parking lot", "by a lake",
    "on a grassy hill", "inside a restaurant", "next to a river", "on the sidewalk", "in a busy market",
]  # fmt: skip
CLAUSES = [
    "in a red shirt", "wearing a hat", "with a backpack", "in a black jacket", "with long hair", "wearing sunglasses",
    "in a blue dress", "with a dog", "holding an umbrella", "in a white uniform",
]  # fmt: skip
TIMES = ["at night", "on a sunny day", "during the day", "in the rain", "at sunset", "in the morning"]
NUMBERS = ["two", "three", "several", "a group of", "a couple of", "many", "2", "3", "four", "a few"]
ODD = [
    "(left) a man [in red] {blurry}", "it's a dog's toy, isn't it?", "they can't and won't stop", '"hello" he said',
    "wow!!! so cute???", "mr. smith in the u.s. at 5 p.m.", "about 3.5 miles, 1,000 people, 12:30", "$5.50 and 50%",
    "a/b test and/or c", "a cat\rand a dog", "a -- b", "e.g. this... and that", "a 10-year-old boy's toy-train",
    "I'm gonna go", "...", "", "St. Louis, Mo.", "the 1990s' cars", "a 'quoted' word", "rock 'n' roll",
]  # fmt: skip


def _pick(rng: random.Random, options: list[str], p: float) -> str:
    return rng.choice(options) if rng.random() < p else ""


def _scene(rng: random.Random) -> dict[str, str]:
    singular, plural = rng.choice(SUBJECTS)
    return {"singular": singular, "plural": plural, "adjective": rng.choice(ADJECTIVES), "action": rng.choice(ACTIONS),
            "object": rng.choice(OBJECTS), "place": rng.choice(PLACES)}  # fmt: skip


def _article(phrase: str) -> str:
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def _caption(rng: random.Random, scene: dict[str, str]) -> str:
    """One COCO-like description of a scene, with paraphrase noise and occasional odd cases."""
    chosen = (scene["adjective"] if rng.random() < 0.5 else "", _pick(rng, ADJECTIVES, 0.3))
    adjectives = " ".join(a for a in dict.fromkeys(chosen) if a)
    if rng.random() < 0.25:
        subject = " ".join(w for w in (rng.choice(NUMBERS), adjectives, scene["plural"]) if w)
        verb = "are"
    else:
        subject = _article(f"{adjectives} {scene['singular']}".strip())
        verb = "is"
    action = scene["action"] if rng.random() < 0.7 else rng.choice(ACTIONS)
    obj = _article(" ".join(w for w in (_pick(rng, ADJECTIVES, 0.4), scene["object"]) if w))
    if rng.random() < 0.2:
        obj = _article(" ".join(w for w in (_pick(rng, ADJECTIVES, 0.4), rng.choice(OBJECTS)) if w))
    place = scene["place"] if rng.random() < 0.6 else _pick(rng, PLACES, 0.5)
    words = [subject, _pick(rng, CLAUSES, 0.25), verb if rng.random() < 0.5 else "", action, obj, place,
             _pick(rng, TIMES, 0.15)]  # fmt: skip
    text = " ".join(w for w in words if w)
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    text += rng.choice([".", ".", "", " .", "!", ". "])
    roll = rng.random()
    if roll < 0.01:
        return rng.choice(ODD)
    if roll < 0.04:
        return f"{text} {rng.choice(ODD)}"
    return text


def make_captions(num_images: int, seed: int) -> tuple[dict[int, list[str]], dict[int, str]]:
    """(image id -> 5 reference captions, image id -> 1 candidate), deterministic."""
    rng = random.Random(seed)
    gts, res = {}, {}
    for image_id in rng.sample(range(1, 10 * num_images + 1), num_images):
        scene = _scene(rng)
        gts[image_id] = [_caption(rng, scene) for _ in range(5)]
        res[image_id] = _caption(rng, scene if rng.random() < 0.8 else _scene(rng))
    return gts, res


def official(gts: dict[int, list[str]], res: dict[int, str]) -> dict[str, tuple]:
    """pycocoevalcap: PTBTokenizer on references and candidates, then Bleu(4), Rouge, Cider."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # "\r" would shift the jar's output lines (docs/evaluation.md, "Captioning (`eval-caption`)", Tokenization)
    def clean(text: str) -> dict[str, str]:
        return {"caption": text.replace("\r", " ")}

    gts_tok = PTBTokenizer().tokenize({i: [clean(c) for c in caps] for i, caps in gts.items()})
    res_tok = PTBTokenizer().tokenize({i: [clean(res[i])] for i in res})
    with contextlib.redirect_stdout(io.StringIO()):
        return {
            "bleu": Bleu(4).compute_score(gts_tok, res_tok, verbose=0),
            "rouge": Rouge().compute_score(gts_tok, res_tok),
            "cider": Cider().compute_score(gts_tok, res_tok),
        }


def ours(gts: dict[int, list[str]], res: dict[int, str]):
    from vlkd_cli.eval import caption_scores

    return caption_scores(gts, res, meteor=False)


def check_equal(mine, theirs: dict[str, tuple], ids: list[int], tol: float = 1e-9) -> float:
    """Largest absolute difference over all corpus and per-image numbers; asserts it is <= tol."""
    pairs = [(f"Bleu_{k + 1}", theirs["bleu"][0][k], theirs["bleu"][1][k]) for k in range(4)]
    pairs += [("ROUGE_L", *theirs["rouge"]), ("CIDEr", *theirs["cider"])]
    worst = 0.0
    for name, corpus, per_image in pairs:
        worst = max(worst, abs(mine.metrics[name] - float(corpus)))
        worst = max(worst, max(abs(mine.per_image[name][i] - float(s)) for i, s in zip(ids, per_image)))
    assert worst <= tol, f"results differ by {worst}"
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    times: dict[str, list[float]] = {"ours": [], "official": []}
    worst = 0.0
    for run in range(args.runs):  # a fresh corpus per run: no cache carries over from the previous run
        gts, res = make_captions(args.images, args.seed + run)
        results = {}
        for name, fn in (("ours", ours), ("official", official)):
            start = time.perf_counter()
            results[name] = fn(gts, res)
            times[name].append(round(time.perf_counter() - start, 3))
        worst = max(worst, check_equal(results["ours"], results["official"], list(res)))
    t_ours, t_official = statistics.median(times["ours"]), statistics.median(times["official"])
    metrics = results["ours"].metrics
    print(
        f"{args.images} images x 5 refs + 1 candidate; median of {args.runs} runs each (corpus seeds "
        f"{args.seed}..{args.seed + args.runs - 1}); numbers of the last corpus:"
    )
    print("  " + ", ".join(f"{k} {metrics[k]:.6f}" for k in ("Bleu_1", "Bleu_4", "ROUGE_L", "CIDEr")))
    print(f"  vlkd caption_scores (PTB + BLEU + ROUGE-L + CIDEr-D): {t_ours:.3f} s  (runs {times['ours']})")
    print(f"  pycocoevalcap (PTBTokenizer + Bleu + Rouge + Cider):  {t_official:.3f} s  (runs {times['official']})")
    print(f"  speed-up {t_official / t_ours:.1f}x; largest difference {worst:.1e}")
    print()
    print("| images | vlkd | pycocoevalcap | speed-up | max abs diff |")
    print("|---|---|---|---|---|")
    print(f"| {args.images} x 5 refs | {t_ours:.2f} s | {t_official:.2f} s | **{t_official / t_ours:.1f}x** | "
          f"{worst:.0e} |")  # fmt: skip


if __name__ == "__main__":
    main()
