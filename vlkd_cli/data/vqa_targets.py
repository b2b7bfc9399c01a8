"""VQA v2 training targets: the answer vocabulary and each question's soft scores (the official accuracy of every
in-vocabulary answer, as the official VQA accuracy defines it: docs/evaluation.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from vlkd_cli.eval.vqa import question_accuracy


def answer_vocabulary(multiple_choice_answers: Iterable[str], *, min_count: int = 9) -> list[str]:
    """Answers chosen as `multiple_choice_answer` by at least `min_count` questions.

    Args:
        multiple_choice_answers: One (normalized) answer per question.
        min_count: Minimum number of questions.

    Returns:
        The vocabulary, most frequent first, ties in alphabetical order (deterministic).
    """
    counts = Counter(multiple_choice_answers)
    kept = [(answer, n) for answer, n in counts.items() if n >= min_count]
    return [answer for answer, _ in sorted(kept, key=lambda item: (-item[1], item[0]))]


def soft_target(answers: Sequence[str], vocab_index: Mapping[str, int]) -> dict[int, float]:
    """Soft score of every in-vocabulary answer of one question.

    Args:
        answers: The human answers (10 in VQA v2), normalized.
        vocab_index: answer -> index in the vocabulary.

    Returns:
        {answer index: official accuracy of that answer}; answers outside the vocabulary are dropped.
    """
    return {vocab_index[a]: question_accuracy(a, answers) for a in dict.fromkeys(answers) if a in vocab_index}
