"""`vlkd eval-vqa`: answer VQA questions with a model (or take any model's results file) and score them with the
official VQA accuracy (GT-Vision-Lab/VQA `vqaEval.py`, the 2021 HEAD or the 2016 version).

The results file covers every question id of `--questions`, in the official format
`[{"question_id", "answer"}]`; without `--annotations` it is all that is written (for the EvalAI servers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlkd_cli.artifacts.eval_dir import EvalOutput, write_eval_dir
from vlkd_cli.artifacts.io import input_record
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.batching import batched
from vlkd_cli.data.karpathy import load_karpathy
from vlkd_cli.data.vl_datasets import vqa_samples
from vlkd_cli.data.vqa import VqaQuestion, load_vqa_annotations, load_vqa_questions
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models.precision import check_precision, precision_context
from vlkd_cli.progress import progress_bar
from vlkd_cli.runtime import resolve_device
from vlkd_cli.tasks.inference import InferenceModel, load_inference_model

COMMAND = "eval-vqa"
VERSIONS = ("2021", "2016")


@dataclass(frozen=True)
class EvalVqaConfig:
    out: Path
    questions: Path
    annotations: Path | None = None
    model: Path | None = None
    regions: Path | tuple[Path, ...] | None = None  # one set, or several read as one
    predictions: Path | None = None
    split_file: Path | None = None  # a Karpathy file: only the questions about the images of its --split
    split: str | None = None
    official_version: str = "2021"
    batch_size: int = 64
    device: str = "auto"
    precision: str = "fp32"  # fp32, bf16 (autocast) or int8 (dynamic quantisation of Linear layers, CPU)


def check_config(cfg: EvalVqaConfig) -> None:
    if (cfg.model is None) == (cfg.predictions is None):
        raise UsageError("give either --model DIR --regions R, or --predictions results.json")
    if cfg.model is not None and cfg.regions is None:
        raise UsageError("--model needs --regions (the regions artifact of the questions' images)")
    if cfg.official_version not in VERSIONS:
        raise UsageError(f"--official-version must be 2021 or 2016, got {cfg.official_version!r}")
    if cfg.batch_size < 1:
        raise UsageError("--batch-size must be positive")
    if cfg.split is not None and cfg.split_file is None:
        raise UsageError("--split needs --split-file (a Karpathy split file such as dataset_coco.json)")
    check_precision(cfg.precision)


def split_questions(questions: dict[int, VqaQuestion], split_file: Path | None,
                    split: str | None) -> dict[int, VqaQuestion]:  # fmt: skip
    """The questions about the images of a Karpathy split (default test; train = train + restval), or all."""
    if split_file is None:
        return questions
    images = {image.image_id for image in load_karpathy(split_file, split or "test")}
    kept = {qid: q for qid, q in questions.items() if q.image_id in images}
    if not kept:
        raise InputError(f"no question is about an image of the {split or 'test'} split of {split_file}",
                         split_file)  # fmt: skip
    return kept


def answer_questions(loaded: InferenceModel, questions: dict[int, VqaQuestion], regions: Regions,
                     batch_size: int, precision: str = "fp32") -> dict[int, str]:  # fmt: skip
    """The argmax answer of the model's vocabulary for every question, batched."""
    answers = loaded.config.get("answers")
    if not answers:
        raise InputError("the VQA model has no answer vocabulary in its config.json", loaded.record["path"])
    samples = vqa_samples(regions, questions, None, source=str(regions.path))
    regions.check_finite(loaded.side, (s.image_index for s in samples))
    qids = sorted(questions)  # vqa_samples orders by question id
    predicted: dict[int, str] = {}
    with progress_bar("answering", len(samples)) as advance, torch.inference_mode(), \
            precision_context(precision, loaded.device):
        for ids, chunk in zip(batched(qids, batch_size), batched(samples, batch_size)):
            batch = loaded.collator(chunk).vl.to(loaded.device)
            best = loaded.model.vqa_logits(batch).argmax(dim=1).tolist()
            predicted.update((qid, answers[a]) for qid, a in zip(ids, best))
            advance(len(chunk))
    return predicted


def _model_answers(cfg: EvalVqaConfig, questions: dict[int, VqaQuestion]) -> tuple[dict[int, str], list[dict]]:
    regions = Regions(cfg.regions)
    loaded = load_inference_model(cfg.model, regions, tasks=("vqa",), device=resolve_device(cfg.device),
                                  precision=cfg.precision)  # fmt: skip
    inputs = [loaded.record] + [input_record(p, "regions") for p in regions.paths]
    return answer_questions(loaded, questions, regions, cfg.batch_size, cfg.precision), inputs


def results_records(answers: dict[int, str]) -> list[dict[str, Any]]:
    """The official results format, question ids ascending."""
    return [{"question_id": int(q), "answer": answers[q]} for q in sorted(answers)]


def run(cfg: EvalVqaConfig) -> dict[str, Any]:
    """Answer (or read results), score when annotations are given, write the eval directory."""
    from vlkd_cli.eval.vqa import vqa_accuracy
    from vlkd_cli.eval.vqa_results import read_vqa_results

    check_config(cfg)
    every_question = load_vqa_questions(cfg.questions)
    annotations = load_vqa_annotations(cfg.annotations, every_question) if cfg.annotations is not None else None
    questions = split_questions(every_question, cfg.split_file, cfg.split)
    if annotations is not None:
        annotations = {qid: annotations[qid] for qid in questions}
    if cfg.predictions is not None:
        answers = read_vqa_results(cfg.predictions, set(questions))
        inputs = [input_record(cfg.predictions, "predictions")]
    else:
        answers, inputs = _model_answers(cfg, questions)
    inputs.append(input_record(cfg.questions, "questions"))
    if cfg.split_file is not None:
        inputs.append(input_record(cfg.split_file, "split"))
    config = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
    if annotations is None:
        write_eval_dir(cfg.out, EvalOutput(results_records(answers), config=config, inputs=inputs), command=COMMAND)
        return {"questions": len(answers), "metrics": None}
    inputs.append(input_record(cfg.annotations, "annotations"))
    result = vqa_accuracy(answers, [asdict(a) for a in annotations.values()], cfg.official_version)
    metrics = {k: result[k] for k in ("overall", "perQuestionType", "perAnswerType")}
    qids = sorted(answers)
    scores = {
        "question_ids": np.asarray(qids, dtype=np.int64),
        "accuracy": np.asarray([result["per_question"][q] for q in qids], dtype=np.float64),
    }
    write_eval_dir(cfg.out, EvalOutput(results_records(answers), metrics, scores, config, inputs), command=COMMAND)
    return {"questions": len(qids), "metrics": metrics}
