"""Annotations → training and validation samples for each task (caption, vqa, retrieval, pretrain).

Train images: the Karpathy `--split` (train = train + restval) of `--split-file` (default: `--annotations` when it
is a Karpathy file), else every image of the annotation file. Validation: the `--val-split` of the same Karpathy
file, or separate `--val-annotations` (+ `--val-questions` for VQA, narrowed to the `--val-split` images when
both are given: val2014's questions about the Karpathy val images).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.captions import load_captions
from vlkd_cli.data.karpathy import is_karpathy, load_karpathy
from vlkd_cli.data.task_config import TASKS, DataConfig
from vlkd_cli.data.vl_datasets import Sample, caption_samples, vqa_samples
from vlkd_cli.data.vqa import VqaAnnotation, load_vqa_annotations, load_vqa_questions
from vlkd_cli.data.vqa_targets import answer_vocabulary, soft_target
from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.jsonfile import read_json


@dataclass
class TaskData:
    train: list[Sample]
    val: list[Sample]
    val_references: dict  # caption/retrieval: image id -> captions; vqa: question id -> VqaAnnotation
    val_question_ids: list[int]
    answers: list[str] | None
    texts: list[str]  # training text, for a tokenizer trained from scratch


def load_task_data(cfg: DataConfig, regions: Regions, *, source: str) -> TaskData:
    if cfg.task not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
    if cfg.task == "vqa":
        return _vqa_data(cfg, regions, source)
    return _caption_data(cfg, regions, source)


def _split_images(cfg: DataConfig, split: str | None) -> set[int] | None:
    """Image ids of a Karpathy split, or None (= all images of the annotation file)."""
    if split is None:
        return None
    split_file = cfg.split_file or cfg.annotations
    if not is_karpathy(read_json(split_file)):
        raise UsageError(f"--split applies to Karpathy files only; give --split-file (a Karpathy JSON) for {split_file}")
    return {image.image_id for image in load_karpathy(split_file, split)}


def _restrict(mapping: dict, image_ids: set[int] | None, image_of=lambda key, value: key) -> dict:
    if image_ids is None:
        return mapping
    return {k: v for k, v in mapping.items() if image_of(k, v) in image_ids}


def _caption_data(cfg: DataConfig, regions: Regions, source: str) -> TaskData:
    karpathy = is_karpathy(read_json(cfg.annotations))
    captions = load_captions(cfg.annotations, None) if karpathy else load_captions(cfg.annotations)
    train_caps = _restrict(captions, _split_images(cfg, cfg.split))
    train_caps = {k: v for k, v in train_caps.items() if v}
    if not train_caps:
        raise InputError("no training captions (empty file or split)", cfg.annotations)
    if cfg.val_annotations is not None:
        val_caps = load_captions(cfg.val_annotations)
    else:
        val_caps = _restrict(captions, _split_images(cfg, cfg.val_split)) if cfg.val_split else {}
    val_caps = {k: v for k, v in val_caps.items() if v}
    train = caption_samples(regions, train_caps, source=f"{source} (train)")
    val = caption_samples(regions, val_caps, source=f"{source} (validation)") if val_caps else []
    texts = [c for caps in train_caps.values() for c in caps]
    return TaskData(train, val, val_caps, [], None, texts)


def _vqa_data(cfg: DataConfig, regions: Regions, source: str) -> TaskData:
    if cfg.questions is None:
        raise UsageError("--task vqa needs --questions (VQA v2 questions JSON) and --annotations (VQA v2 annotations)")
    questions = load_vqa_questions(cfg.questions)
    annotations = load_vqa_annotations(cfg.annotations, questions)
    train_images = _split_images(cfg, cfg.split)
    train_q = _restrict(questions, train_images, lambda qid, q: q.image_id)
    if cfg.val_questions is not None:
        val_q = load_vqa_questions(cfg.val_questions)
        val_a = load_vqa_annotations(cfg.val_annotations or cfg.annotations, val_q)
        if cfg.val_split:  # e.g. val2014's questions about the Karpathy val images only
            val_q = _restrict(val_q, _split_images(cfg, cfg.val_split), lambda qid, q: q.image_id)
    elif cfg.val_split:
        val_q = _restrict(questions, _split_images(cfg, cfg.val_split), lambda qid, q: q.image_id)
        val_a = annotations
    else:
        val_q, val_a = {}, {}
    answers = _answers(cfg, [annotations[qid] for qid in train_q])
    index = {answer: n for n, answer in enumerate(answers)}
    targets = {qid: soft_target(annotations[qid].answers, index) for qid in train_q}
    train = vqa_samples(regions, train_q, targets, source=f"{source} (train)")
    val = vqa_samples(regions, val_q, None, source=f"{source} (validation)") if val_q else []
    references = {qid: val_a[qid] for qid in val_q}
    texts = [q.question for q in train_q.values()] + answers
    return TaskData(train, val, references, sorted(val_q), answers, texts)


def _answers(cfg: DataConfig, annotations: list[VqaAnnotation]) -> list[str]:
    """The answer vocabulary: `--answer-vocab` (a JSON list) or answers seen at least `--min-answer-count` times."""
    if cfg.answer_vocab is not None:
        vocab = read_json(cfg.answer_vocab)
        if not isinstance(vocab, list) or not vocab or not all(isinstance(a, str) for a in vocab):
            raise InputError("an answer vocabulary must be a non-empty JSON list of strings", cfg.answer_vocab)
        if len(set(vocab)) != len(vocab):
            raise InputError("duplicate answers in the answer vocabulary", cfg.answer_vocab)
        return vocab
    vocab = answer_vocabulary([a.multiple_choice_answer for a in annotations], min_count=cfg.min_answer_count)
    if not vocab:
        counts = Counter(a.multiple_choice_answer for a in annotations).most_common(1)
        raise InputError(
            f"no answer occurs {cfg.min_answer_count} times (the most frequent: {counts}); lower --min-answer-count",
            cfg.annotations,
        )
    return vocab
