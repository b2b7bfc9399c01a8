"""Evaluation: caption metrics, VQA accuracy, retrieval recall (numbers equal to the official scripts).

The public functions are re-exported lazily (PEP 562 module `__getattr__`), so `import vlkd_cli.eval` stays light
(no torch, no numpy until a function is used):

* `caption_scores` (and `CaptionScores`) from `vlkd_cli.eval.caption_metrics`;
* `vqa_accuracy` from `vlkd_cli.eval.vqa`;
* `retrieval_recall` from `vlkd_cli.eval.retrieval`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlkd_cli.eval.caption_metrics import CaptionScores, caption_scores
    from vlkd_cli.eval.retrieval import retrieval_recall
    from vlkd_cli.eval.vqa import vqa_accuracy

_EXPORTS = {
    "caption_scores": "vlkd_cli.eval.caption_metrics",
    "CaptionScores": "vlkd_cli.eval.caption_metrics",
    "vqa_accuracy": "vlkd_cli.eval.vqa",
    "retrieval_recall": "vlkd_cli.eval.retrieval",
}

__all__ = ["CaptionScores", "caption_scores", "retrieval_recall", "vqa_accuracy"]


def __getattr__(name: str) -> Any:
    """Import a re-exported function on first access; unknown names (and submodules) raise AttributeError."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
