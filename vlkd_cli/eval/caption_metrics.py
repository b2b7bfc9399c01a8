"""COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE) as pycocoevalcap 1.2's `COCOEvalCap`.

Reproduces the pipeline of `pycocoevalcap/eval.py` (salaniz/pycocoevalcap@ad63453 = tylin/coco-caption@3a9afb2;
see docs/evaluation.md, "Captioning (`eval-caption`)") with the image set of the official demo (the ids that have a
result): raw captions in; references and candidates PTB-tokenized separately; then the scorers on the tokenized
strings; corpus scores as fractions; per-image scores keyed by image id.

Two backends give the same output structure:

* ``"python"`` (default): `ptb_tokenizer.tokenize_captions` (pure Python PTB tokenization), `bleu.py`, `rouge.py`,
  `cider.py` (numpy; equal to the official scorers to ~1e-15), METEOR through the official jar (`meteor.py`, needs
  Java). The scorers share one splitting and interning of the tokenized captions; BLEU and CIDEr-D one n-gram
  table.
* ``"pycocoevalcap"``: the official `PTBTokenizer` and the scorers `Bleu(4)`, `Meteor`, `Rouge`, `Cider` (and `Spice`
  when asked), called one by one — not `COCOEvalCap.evaluate`, which always instantiates `Spice` and therefore fails
  offline. Before the official tokenizer sees them, ``\\r \\n \\v \\f \\x85 \\u2028 \\u2029`` in captions become spaces
  (otherwise its line-based pipe shifts every later caption to the wrong image), and a trailing empty caption that its
  ``zip`` drops is restored as the empty string. The scorers' prints are silenced.

SPICE needs Stanford CoreNLP 3.6.0, which pycocoevalcap downloads on first use; when it is absent SPICE is None with
`SPICE_OFFLINE_REASON` (nothing is downloaded here). METEOR is None with a reason when Java or pycocoevalcap is
missing, when the jar fails, or when ``meteor=False``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
import subprocess
import threading
import types
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from vlkd_cli.eval.bleu import bleu_scores
from vlkd_cli.eval.cider import caption_ngrams_of_ids, cider_image_scores
from vlkd_cli.eval.rouge import rouge_l_of_ids
from vlkd_cli.eval.token_ids import split_lines

METRIC_NAMES = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE")
BACKENDS = ("python", "pycocoevalcap")
SPICE_OFFLINE_REASON = (
    "SPICE needs Stanford CoreNLP 3.6.0 models, which pycocoevalcap downloads at run time; offline it cannot run"
)
METEOR_OFF_REASON = "not requested (meteor=False)"
_SPICE_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
_LINE_BREAKS = str.maketrans({c: " " for c in "\r\n\v\f\x85\u2028\u2029"})
_OFFICIAL_METEOR_TIMEOUT = 1800.0


@dataclass
class CaptionScores(Mapping[str, "float | None"]):
    """Scores of a caption evaluation; as a mapping it is `metrics` (the dict the public library API promises,
    docs/architecture.md "The public library API": `caption_scores(gts, res)["CIDEr"]`,
    `dict(caption_scores(gts, res))`).

    Attributes:
        metrics: The official keys Bleu_1..Bleu_4, METEOR, ROUGE_L, CIDEr, SPICE -> corpus score (fractions, CIDEr on
            pycocoevalcap's x10 scale), None for a metric that did not run.
        per_image: metric -> image id -> score (only the metrics that ran).
        reasons: metric -> why it is None.
    """

    metrics: dict[str, float | None]
    per_image: dict[str, dict[Any, float]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> float | None:
        return self.metrics[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)


def _describe(ids: list[Hashable]) -> str:
    shown = ", ".join(repr(i) for i in ids[:10])
    return f"{shown}{', ...' if len(ids) > 10 else ''} ({len(ids)} in total)"


def _single_caption(value: object) -> str | None:
    """The caption of a result: a string, or a list/tuple holding exactly one string; None otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    return None


def validate_inputs(
    gts: Mapping[Hashable, Sequence[str]], res: Mapping[Hashable, str | Sequence[str]]
) -> tuple[list[Hashable], dict[Hashable, list[str]], dict[Hashable, str]]:
    """Check the official pipeline's preconditions and restrict the references to the result ids.

    Args:
        gts: image id -> reference captions.
        res: image id -> the candidate caption (a string, or a list of exactly one string).

    Returns:
        (ids in the order of `res`, id -> references, id -> candidate).

    Raises:
        ValueError: No result; result ids missing from `gts`; a result without exactly one caption; an image
            without references; a caption that is not a string.
    """
    if not res:
        raise ValueError("caption_scores: no results to score")
    ids = list(res)
    missing = [i for i in ids if i not in gts]
    if missing:
        raise ValueError(f"caption_scores: result image ids not in the references: {_describe(missing)}")
    candidates = {i: _single_caption(res[i]) for i in ids}
    bad = [i for i, c in candidates.items() if c is None]
    if bad:
        message = "results need exactly one caption (a string) per image; bad ids"
        raise ValueError(f"caption_scores: {message}: {_describe(bad)}")
    refs: dict[Hashable, list[str]] = {}
    bad_refs = []
    for i in ids:
        captions = gts[i]
        if isinstance(captions, str) or not all(isinstance(c, str) for c in captions) or len(captions) == 0:
            bad_refs.append(i)
        else:
            refs[i] = list(captions)
    if bad_refs:
        message = "images need a list of at least one reference string; bad ids"
        raise ValueError(f"caption_scores: {message}: {_describe(bad_refs)}")
    return ids, refs, {i: c for i, c in candidates.items() if c is not None}


def _store(out: CaptionScores, name: str, corpus: float, ids: Sequence[Hashable], scores: Sequence[float]) -> None:
    out.metrics[name] = float(corpus)
    out.per_image[name] = {i: float(s) for i, s in zip(ids, scores)}


def _store_bleu(
    out: CaptionScores, corpus: Sequence[float], ids: Sequence[Hashable], per: Sequence[Sequence[float]]
) -> None:
    """Store Bleu_1..Bleu_4; `per` is (4, I), BleuScorer's list of per-image lists."""
    for k in range(4):
        _store(out, f"Bleu_{k + 1}", corpus[k], ids, per[k])


def _fail(out: CaptionScores, name: str, reason: str) -> None:
    out.metrics[name] = None
    out.reasons[name] = reason


# ----------------------------------------------------------------------------------------------------- python


def _python_backend(
    out: CaptionScores, ids: list[Hashable], refs: dict[Hashable, list[str]], cands: dict[Hashable, str], meteor: bool
) -> tuple[dict[Hashable, list[str]], dict[Hashable, list[str]]]:
    """Pure-Python tokenization and scorers (METEOR: the jar); returns the tokenized (gts, res) for SPICE."""
    from vlkd_cli.eval.ptb_tokenizer import tokenize_captions  # lazy: the tokenizer is only needed here

    gts_tok = tokenize_captions(refs)
    res_tok = tokenize_captions({i: [cands[i]] for i in ids})
    hyps = [res_tok[i][0] for i in ids]
    # Image by image, its references then its candidate; split once for BLEU / CIDEr-D and once for ROUGE-L.
    words, pieces = split_lines(list(chain.from_iterable((*gts_tok[i], hyp) for i, hyp in zip(ids, hyps))))
    num_refs = np.fromiter((len(gts_tok[i]) for i in ids), np.int64, count=len(ids))
    grams = caption_ngrams_of_ids(words, num_refs, 4)
    corpus, per_image = bleu_scores(grams, ids)
    _store_bleu(out, corpus, ids, list(zip(*per_image.values())))
    if meteor:
        from vlkd_cli.eval.meteor import meteor as run_meteor

        result = run_meteor(gts_tok, {i: h for i, h in zip(ids, hyps)})
        if result.score is None:
            _fail(out, "METEOR", result.reason or "METEOR failed")
        else:
            _store(out, "METEOR", result.score, ids, [result.per_image[i] for i in ids])
    rouge = rouge_l_of_ids(pieces.select(grams.hyp_sentence), pieces.select(grams.ref_sentence), num_refs, 1.2)
    _store(out, "ROUGE_L", np.mean(rouge), ids, rouge.tolist())
    cider = cider_image_scores(grams, 6.0)
    _store(out, "CIDEr", np.mean(cider), ids, cider.tolist())
    return gts_tok, res_tok


# ---------------------------------------------------------------------------------------------- pycocoevalcap


def _official_tokenize(captions: Mapping[Hashable, list[str]]) -> dict[Hashable, list[str]]:
    """pycocoevalcap's PTBTokenizer with the alignment hazards defused and Java's stderr line silenced."""
    from pycocoevalcap.tokenizer import ptbtokenizer

    cleaned = {i: [c.translate(_LINE_BREAKS) for c in caps] for i, caps in captions.items()}
    quiet = types.SimpleNamespace(**vars(subprocess))  # `subprocess` whose Popen discards the child's stderr
    quiet.Popen = lambda *args, **kwargs: subprocess.Popen(*args, stderr=subprocess.DEVNULL, **kwargs)
    saved = ptbtokenizer.subprocess
    ptbtokenizer.subprocess = quiet
    try:
        tokens = ptbtokenizer.PTBTokenizer().tokenize(
            {i: [{"caption": c} for c in caps] for i, caps in cleaned.items()}
        )
    finally:
        ptbtokenizer.subprocess = saved
    # The wrapper's zip drops a trailing caption that produced no output line (an empty one): restore it as "".
    return {i: tokens.get(i, []) + [""] * (len(caps) - len(tokens.get(i, []))) for i, caps in cleaned.items()}


def _official_meteor(gts_tok: dict, res_tok: dict, ids: list[Hashable]) -> tuple[float | None, list[float], str]:
    """pycocoevalcap's Meteor with a deadline; the jar process is always closed."""
    if shutil.which("java") is None:
        return None, [], "java not found"
    from pycocoevalcap.meteor.meteor import Meteor

    try:
        scorer = Meteor()
    except OSError as err:
        return None, [], f"METEOR failed: {err}"
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = scorer.compute_score(gts_tok, res_tok)
        except Exception as err:  # noqa: BLE001 - reported as the reason
            result["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(_OFFICIAL_METEOR_TIMEOUT)
    proc = scorer.meteor_p
    with contextlib.suppress(OSError, ValueError):
        proc.stdin.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if "value" not in result:
        return None, [], f"METEOR failed: {result.get('error', 'timed out')}"
    score, scores = result["value"]
    return float(score), [float(s) for s in scores], ""


def _official_backend(
    out: CaptionScores, ids: list[Hashable], refs: dict[Hashable, list[str]], cands: dict[Hashable, str], meteor: bool
) -> tuple[dict[Hashable, list[str]], dict[Hashable, list[str]]]:
    """The official PTBTokenizer and scorers; returns the tokenized (gts, res) for SPICE."""
    if importlib.util.find_spec("pycocoevalcap") is None:
        raise RuntimeError("backend 'pycocoevalcap' needs the pycocoevalcap package (pip install pycocoevalcap)")
    if shutil.which("java") is None:
        raise RuntimeError("backend 'pycocoevalcap' needs Java for its PTB tokenizer: java not found")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts_tok = _official_tokenize(refs)
    res_tok = _official_tokenize({i: [cands[i]] for i in ids})
    with contextlib.redirect_stdout(io.StringIO()):
        corpus, per = Bleu(4).compute_score(gts_tok, res_tok, verbose=0)
        _store_bleu(out, corpus, ids, per)
        if meteor:
            score, scores, reason = _official_meteor(gts_tok, res_tok, ids)
            if score is None:
                _fail(out, "METEOR", reason)
            else:
                _store(out, "METEOR", score, ids, scores)
        score, scores = Rouge().compute_score(gts_tok, res_tok)
        _store(out, "ROUGE_L", score, ids, scores)
        score, scores = Cider().compute_score(gts_tok, res_tok)
        _store(out, "CIDEr", score, ids, scores)
    return gts_tok, res_tok


# ------------------------------------------------------------------------------------------------------ SPICE


def _spice(out: CaptionScores, ids: list[Hashable], gts_tok: dict, res_tok: dict) -> None:
    """Official SPICE when Java and CoreNLP 3.6.0 are present (never downloads); else None with the reason."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return _fail(out, "SPICE", "pycocoevalcap not installed")
    lib = Path(next(iter(spec.submodule_search_locations))) / "spice" / "lib"
    if not all((lib / name).is_file() for name in _SPICE_JARS):
        return _fail(out, "SPICE", SPICE_OFFLINE_REASON)
    if shutil.which("java") is None:
        return _fail(out, "SPICE", "java not found")
    try:
        from pycocoevalcap.spice.spice import Spice

        with contextlib.redirect_stdout(io.StringIO()):
            score, scores = Spice().compute_score({i: gts_tok[i] for i in ids}, {i: res_tok[i] for i in ids})
        order = sorted(ids)  # type: ignore[type-var]  # Spice sorts the ids internally
    except Exception as err:  # noqa: BLE001 - any failure of the jar is reported, not raised
        return _fail(out, "SPICE", f"SPICE failed: {err}")
    by_id = {i: float(s["All"]["f"]) for i, s in zip(order, scores)}  # official evalImgs misassigns these
    _store(out, "SPICE", float(score), ids, [by_id[i] for i in ids])


# ------------------------------------------------------------------------------------------------------- API


def caption_scores(
    gts: Mapping[Hashable, Sequence[str]],
    res: Mapping[Hashable, str | Sequence[str]],
    *,
    meteor: bool = True,
    spice: bool = False,
    backend: str = "python",
) -> CaptionScores:
    """Official COCO caption metrics of one candidate caption per image.

    Args:
        gts: image id -> raw reference captions (may hold more images than `res`; only the ids of `res` are scored,
            and CIDEr's document frequencies come from their references, as in the official demo).
        res: image id -> the raw candidate caption (a string, or a list of exactly one string).
        meteor: Run METEOR (official jar; needs Java, ~10 s start-up).
        spice: Try SPICE (needs Java and the Stanford CoreNLP 3.6.0 models in pycocoevalcap's spice/lib).
        backend: "python" (pure-Python tokenizer and scorers) or "pycocoevalcap" (the official ones; needs Java).

    Returns:
        Corpus scores under the official keys, per-image scores, and the reasons of the metrics that are None.

    Raises:
        ValueError: Bad input (see `validate_inputs`) or an unknown backend.
        RuntimeError: backend "pycocoevalcap" without pycocoevalcap or Java.
    """
    if backend not in BACKENDS:
        raise ValueError(f"caption_scores: backend must be one of {BACKENDS}, got {backend!r}")
    ids, refs, cands = validate_inputs(gts, res)
    out = CaptionScores(metrics=dict.fromkeys(METRIC_NAMES))
    run = _python_backend if backend == "python" else _official_backend
    gts_tok, res_tok = run(out, ids, refs, cands, meteor)
    if not meteor:
        _fail(out, "METEOR", METEOR_OFF_REASON)
    if spice:
        _spice(out, ids, gts_tok, res_tok)
    else:
        _fail(out, "SPICE", SPICE_OFFLINE_REASON)
    return out
