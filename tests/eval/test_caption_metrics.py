"""COCO caption metrics: parity with pycocoevalcap 1.2 (scorers on generated tokenized corpora; the whole pipeline on
generated raw captions with Java), METEOR through the jar, input checks, the public structure.
"""

from __future__ import annotations

import importlib.util
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vlkd_cli.eval import meteor as meteor_module
from vlkd_cli.eval.bleu import bleu
from vlkd_cli.eval.caption_metrics import METRIC_NAMES, SPICE_OFFLINE_REASON, caption_scores
from vlkd_cli.eval.cider import cider_d
from vlkd_cli.eval.meteor import meteor
from vlkd_cli.eval.rouge import rouge_l

HAVE_JAVA = shutil.which("java") is not None
HAVE_COCOEVALCAP = importlib.util.find_spec("pycocoevalcap") is not None
HAVE_PTB = importlib.util.find_spec("vlkd_cli.eval.ptb_tokenizer") is not None
needs_java = pytest.mark.skipif(not (HAVE_JAVA and HAVE_COCOEVALCAP), reason="needs Java and pycocoevalcap")
needs_ptb = pytest.mark.skipif(not HAVE_PTB, reason="vlkd_cli.eval.ptb_tokenizer is not there yet")

# ------------------------------------------------------------------------------------- tokenized corpora

VOCAB = ["a", "an", "the", "man", "woman", "dog", "cat", "red", "blue", "on", "in", "of", "with", "sitting", "is",
         "are", "two", "'s", "n't", "-lrb-", "-rrb-", "!!!", "3.5"]  # fmt: skip


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(rng.randint(low, high)))


def _hypothesis(rng: random.Random, refs: list[str]) -> str:
    kind = rng.random()
    if kind < 0.1:
        return ""
    if kind < 0.2:
        return _sentence(rng, 16, 30)  # longer than every reference
    if kind < 0.25:
        return _sentence(rng, 65, 80)  # > 64 tokens: ROUGE's Python-int LCS path
    if kind < 0.35:
        return _sentence(rng, 1, 1)
    if kind < 0.5:
        return rng.choice(refs)
    if kind < 0.6:
        return " " + _sentence(rng, 1, 6).replace(" ", "  ", 1)  # split(" ") vs split() differ
    return _sentence(rng, 1, 15)


def tokenized_case(seed: int) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """A generated corpus of tokenized captions in pycocoevalcap's scorer format (gts, res)."""
    rng = random.Random(seed)
    gts: dict[int, list[str]] = {}
    res: dict[int, list[str]] = {}
    for image_id in rng.sample(range(10**6), rng.choice([1, 1, 2, 3, 5, 12, 40])):
        short_hyp = rng.random() < 0.1
        refs = [_sentence(rng, 10 if short_hyp else 1, 15) for _ in range(rng.randint(1, 7))]
        if rng.random() < 0.2:
            refs.append(rng.choice(refs))  # duplicate reference
        if rng.random() < 0.1:
            refs.append(_sentence(rng, 1, 1))
        if rng.random() < 0.05:
            refs.append("")
        gts[image_id] = refs
        res[image_id] = [_sentence(rng, 1, 2) if short_hyp else _hypothesis(rng, refs)]
    return gts, res


def _official_scorers(gts: dict, res: dict) -> dict[str, tuple]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    return {
        "bleu": Bleu(4).compute_score(gts, res, verbose=0),
        "rouge": Rouge().compute_score(gts, res),
        "cider": Cider().compute_score(gts, res),
    }


@pytest.mark.skipif(not HAVE_COCOEVALCAP, reason="needs pycocoevalcap")
def test_scorers_match_pycocoevalcap_on_generated_corpora() -> None:
    checked = 0
    for seed in range(150):
        gts, res = tokenized_case(seed)
        theirs = _official_scorers(gts, res)
        hyps = {i: r[0] for i, r in res.items()}
        ids = list(res)
        corpus, per_image = bleu(gts, hyps)
        assert corpus == theirs["bleu"][0]  # integers + the same float operations: bit-equal
        assert [per_image[i] for i in ids] == [list(s) for s in zip(*theirs["bleu"][1])]
        score, per_image = rouge_l(gts, hyps)
        assert score == pytest.approx(theirs["rouge"][0], abs=1e-12)
        assert np.array_equal([per_image[i] for i in ids], theirs["rouge"][1])  # same LCS integers
        score, per_image = cider_d(gts, hyps)
        assert score == pytest.approx(theirs["cider"][0], abs=1e-12)
        assert np.allclose([per_image[i] for i in ids], theirs["cider"][1], rtol=0, atol=1e-12)
        assert list(per_image) == ids
        checked += len(ids)
    assert checked > 1000


# -------------------------------------------------------------------------------------------- raw captions

SUBJECTS = ["A man", "a woman", "Two dogs", "a black cat", "A group of people", "an elderly woman", "A red bus",
            "A little girl", "three zebras", "The surfer", "a skateboarder"]  # fmt: skip
VERBS = ["is riding", "sitting on", "standing next to", "holding", "eating", "looking at", "walking past", "near"]
OBJECTS = ["a wave", "the beach", "a wooden bench", "a pizza", "a laptop computer", "the snow", "a large building",
           "a kitchen counter", "a frisbee"]  # fmt: skip
ODD = ["(a) man in [brackets] and {braces}", "it's a dog's toy, isn't it?", "he can't, won't, don't",
       '"quoted" and \'single\' quotes', "wow!!! really???", "mr. smith meets dr. jones in the u.s. at 5 p.m.",
       "3.5 miles, 1,000 people, 12:30, 1/2 a cake, the 2nd one", "$5.50 and 50% off", "a/b and/or c",
       "cats\rand dogs", "A -- B", "e.g. this... and that", "a 10-year-old boy's toy-train", "I'm gonna go",
       "", "...", "St. Louis, Mo."]  # fmt: skip


def raw_caption(rng: random.Random) -> str:
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(['.', '', ' .', '!'])}"
    roll = rng.random()
    if roll < 0.15:
        return rng.choice(ODD)
    if roll < 0.3:
        return f"{text} {rng.choice(ODD)}"
    return text


def raw_case(seed: int, num_images: int) -> tuple[dict[int, list[str]], dict[int, str]]:
    rng = random.Random(seed)
    ids = rng.sample(range(10**6), num_images)
    gts = {i: [raw_caption(rng) for _ in range(rng.randint(1, 6))] for i in ids}
    res = {i: raw_caption(rng) for i in ids}
    return gts, res


def _official_pipeline(gts: dict[int, list[str]], res: dict[int, str]) -> dict[str, object]:
    """The official tokenizer + scorers, run directly; "\\r" becomes a space first (else the jar's lines shift)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    def clean(text: str) -> dict[str, str]:
        return {"caption": text.replace("\r", " ")}

    gts_tok = PTBTokenizer().tokenize({i: [clean(c) for c in caps] for i, caps in gts.items()})
    res_tok = PTBTokenizer().tokenize({i: [clean(res[i])] for i in res})
    return _official_scorers(gts_tok, res_tok)


def _assert_close(ours: dict[object, float], theirs, ids: list) -> None:
    assert np.allclose([ours[i] for i in ids], theirs, rtol=0, atol=1e-9)


@needs_java
@needs_ptb
def test_caption_scores_equal_official_pipeline() -> None:
    for seed, num_images in [(11, 60), (12, 25), (13, 3)]:
        gts, res = raw_case(seed, num_images)
        gts[next(iter(gts))].append("an extra caption\r\nwith line breaks")  # no image shift here
        ids = list(res)
        ours = caption_scores(gts, res, meteor=False)
        theirs = _official_pipeline(gts, res)
        for k in range(4):
            assert ours.metrics[f"Bleu_{k + 1}"] == pytest.approx(theirs["bleu"][0][k], abs=1e-9)
            _assert_close(ours.per_image[f"Bleu_{k + 1}"], theirs["bleu"][1][k], ids)
        for name, key in [("ROUGE_L", "rouge"), ("CIDEr", "cider")]:
            assert ours.metrics[name] == pytest.approx(theirs[key][0], abs=1e-9)
            _assert_close(ours.per_image[name], theirs[key][1], ids)
        assert ours.metrics["METEOR"] is None and ours.metrics["SPICE"] is None


@needs_java
@needs_ptb
def test_pycocoevalcap_backend_equals_python_backend() -> None:
    gts, res = raw_case(21, 30)
    gts[next(iter(gts))] = ["a line\u2028separator", "form\ffeed and vertical\vtab", "next\x85line"]
    res[list(res)[-1]] = ""  # the official wrapper drops a trailing empty caption; the backend restores it
    ours = caption_scores(gts, res, meteor=False)
    official = caption_scores(gts, res, meteor=False, backend="pycocoevalcap")
    assert official.metrics.keys() == ours.metrics.keys()
    for name in ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"]:
        assert official.metrics[name] == pytest.approx(ours.metrics[name], abs=1e-9)
        _assert_close(official.per_image[name], [ours.per_image[name][i] for i in res], list(res))
    assert official.reasons == ours.reasons


# ------------------------------------------------------------------------------------------------- METEOR


@needs_java
@pytest.mark.slow
def test_meteor_equals_pycocoevalcap_meteor() -> None:
    from pycocoevalcap.meteor.meteor import Meteor

    gts: dict[int, list[str]] = {}
    res: dict[int, list[str]] = {}
    for seed in range(100, 200):
        more_gts, more_res = tokenized_case(seed)
        gts.update(more_gts)
        res.update(more_res)
        if len(res) >= 20:
            break
    ids = list(res)[:20]
    gts, res = {i: gts[i] for i in ids}, {i: res[i] for i in ids}
    res[ids[0]] = [""]
    gts[ids[1]] = ["", "a man on a horse"]
    res[ids[2]] = ["a man  on ||| a horse"]  # the official wrapper removes ||| and one double space
    official = Meteor()  # its JVM loads while ours runs
    try:
        ours_hyps = {i: r[0] for i, r in res.items()}
        ours_hyps[ids[3]] = res[ids[3]][0].replace(" ", "\n", 1)  # a line break must not hang or shift
        ours_refs = dict(gts)
        ours_refs[ids[4]] = [r.replace(" ", "\r", 1) for r in gts[ids[4]]]
        ours = meteor(ours_refs, ours_hyps)
        score, scores = official.compute_score(gts, res)
    finally:
        official.meteor_p.kill()
    assert ours.reason is None
    assert ours.score == score
    assert [ours.per_image[i] for i in ids] == scores
    assert 0.0 < score < 1.0


def test_meteor_reports_missing_java_and_package(monkeypatch: pytest.MonkeyPatch) -> None:
    refs, hyps = {1: ["a cat"]}, {1: "a cat"}
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    result = meteor(refs, hyps)
    assert (result.score, result.per_image, result.reason) == (None, {}, "java not found")
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: "/usr/bin/java")
    monkeypatch.setattr(meteor_module.importlib.util, "find_spec", lambda name: None)
    assert meteor(refs, hyps).reason == "pycocoevalcap not installed"
    with pytest.raises(ValueError, match="same image ids"):
        meteor({1: ["a"]}, {2: "a"})


def test_meteor_requests_are_protocol_safe() -> None:
    line = meteor_module.score_line(["a ||| b", "c\r\nd"], "x  y\u2028z ||| w")
    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert line.split(" ||| ") == ["SCORE", "a  b", "c  d", "x y z w"]  # hypothesis: official "  " -> " "


# ----------------------------------------------------------------------------------------- API, checks


def test_input_checks_name_the_ids() -> None:
    gts = {1: ["a cat"], 2: ["a dog"], 3: []}
    with pytest.raises(ValueError, match="not in the references: 9"):
        caption_scores(gts, {1: "a cat", 9: "x"})
    with pytest.raises(ValueError, match="exactly one caption.*bad ids: 2"):
        caption_scores(gts, {1: "a cat", 2: ["a", "b"]})
    with pytest.raises(ValueError, match="exactly one caption.*bad ids: 1"):
        caption_scores(gts, {1: 5})
    with pytest.raises(ValueError, match="at least one reference.*bad ids: 3"):
        caption_scores(gts, {1: "a cat", 3: "x"})
    with pytest.raises(ValueError, match="at least one reference.*bad ids: 1"):
        caption_scores({1: "a cat"}, {1: "a cat"})
    with pytest.raises(ValueError, match="no results"):
        caption_scores(gts, {})
    with pytest.raises(ValueError, match="backend"):
        caption_scores(gts, {1: "a cat"}, backend="java")


@needs_ptb
def test_structure_subset_and_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    gts, res = raw_case(5, 12)
    extra = {**gts, -1: ["an image without a result"], -2: ["another one"]}
    scores = caption_scores(extra, {i: [c] for i, c in res.items()}, meteor=False)
    assert tuple(scores.metrics) == METRIC_NAMES
    assert set(scores.per_image) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"}
    assert all(list(v) == list(res) for v in scores.per_image.values())
    assert scores.reasons == {"METEOR": "not requested (meteor=False)", "SPICE": SPICE_OFFLINE_REASON}
    # Only the ids of `res` are scored (CIDEr's document frequencies too): extra references change nothing.
    assert caption_scores(gts, res, meteor=False).metrics == scores.metrics
    assert 0.0 < scores.metrics["CIDEr"] and all(0.0 <= scores.metrics[f"Bleu_{k}"] <= 1.0 for k in range(1, 5))
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    no_java = caption_scores(gts, res)
    assert no_java.metrics["METEOR"] is None and no_java.reasons["METEOR"] == "java not found"
    assert no_java.metrics["CIDEr"] == scores.metrics["CIDEr"]


@needs_ptb
def test_spice_without_corenlp_is_none_with_the_reason() -> None:
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is not None:
        from pathlib import Path

        lib = Path(next(iter(spec.submodule_search_locations))) / "spice" / "lib"
        if (lib / "stanford-corenlp-3.6.0.jar").exists():
            pytest.skip("CoreNLP 3.6.0 is installed here: SPICE would run")
    scores = caption_scores({1: ["a cat"], 2: ["a dog"]}, {1: "a cat", 2: "a cow"}, meteor=False, spice=True)
    assert scores.metrics["SPICE"] is None and scores.reasons["SPICE"] == SPICE_OFFLINE_REASON


def test_reexport_is_import_light() -> None:
    code = (
        "import sys, vlkd_cli.eval as e; assert 'torch' not in sys.modules and 'numpy' not in sys.modules;"
        "from vlkd_cli.eval import caption_scores, cider; import vlkd_cli.eval.caption_metrics as m;"
        "assert caption_scores is m.caption_scores and 'torch' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ok", out.stderr


def test_caption_scores_is_the_metrics_mapping_of_the_public_api():
    from vlkd_cli.eval import caption_scores

    scores = caption_scores({1: ["a red ball", "the ball is red"], 2: ["two dogs"]}, {1: "a red ball", 2: "a cat"},
                            meteor=False)  # fmt: skip
    assert dict(scores) == scores.metrics and scores["CIDEr"] == scores.metrics["CIDEr"]
    assert list(scores) == ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE"]
