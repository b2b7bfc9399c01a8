"""Validation during training (`--eval-every`): the task's metric on the validation samples.

Each process scores a strided share of the items (no padding, so no duplicates) and the results are gathered
before the metric is computed, so a distributed evaluation equals the single-process one.

- caption: greedy decoding, CIDEr-D and BLEU-4 exactly as `eval-caption` computes them (PTB tokenization,
  pycocoevalcap arithmetic), on the validation images;
- vqa: argmax answer, official VQA accuracy (answers of the demo and of VQA v2 annotations are normalized);
- retrieval: recall@1/5/10 both ways on the validation images (cross-encoder: every pair; dual: cosine);
- pretrain: the validation loss (MLM + ITM) with a fixed generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from vlkd_cli.data.batching import batched
from vlkd_cli.data.vl_datasets import Sample, VLCollator
from vlkd_cli.distributed import all_gather_json, get_rank, get_world_size
from vlkd_cli.eval.caption_metrics import caption_scores
from vlkd_cli.eval.retrieval import retrieval_recall
from vlkd_cli.eval.vqa import question_accuracy
from vlkd_cli.tasks.pair_scores import image_embeddings, itm_pair_scores, text_embeddings

METRICS = {"caption": "CIDEr", "vqa": "vqa_accuracy", "retrieval": "r_mean", "pretrain": "neg_loss"}


def _mine(items: Sequence) -> list:
    return list(items)[get_rank() :: get_world_size()]


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def unique_images(samples: Sequence[Sample]) -> list[tuple[int, int]]:
    """(image index, image id) of each distinct image, in id order."""
    return sorted({(s.image_index, s.image_id) for s in samples}, key=lambda item: item[1])


def caption_metrics(model, collator: VLCollator, samples: Sequence[Sample], references: dict, *,
                    batch_size: int, tokenizer, max_length: int = 20, beam_size: int = 1) -> dict[str, float]:  # fmt: skip
    """CIDEr-D of generated captions on the validation images."""
    produced = []
    for chunk in batched(_mine(unique_images(samples)), batch_size):
        batch = collator.images_only([index for index, _ in chunk]).to(_device(model))
        result = model.generate(batch, beam_size=beam_size, max_length=max_length, tokenizer=tokenizer)
        produced += [[image_id, text] for (_, image_id), text in zip(chunk, result.texts)]
    captions = {int(i): t for part in all_gather_json(produced) for i, t in part}
    metrics = caption_scores({i: references[i] for i in captions}, captions, meteor=False).metrics
    return {"CIDEr": metrics["CIDEr"], "Bleu_4": metrics["Bleu_4"], "images": float(len(captions))}


def vqa_metrics(model, collator: VLCollator, samples: Sequence[Sample], question_ids: Sequence[int],
                references: dict, answers: list[str], *, batch_size: int) -> dict[str, float]:  # fmt: skip
    """Official VQA accuracy (percent) of the argmax answers."""
    pairs = _mine(list(zip(question_ids, samples)))
    predicted = []
    for chunk in batched(pairs, batch_size):
        batch = collator([sample for _, sample in chunk]).to(_device(model))
        best = model.vqa_logits(batch.vl).argmax(dim=1).tolist()
        predicted += [[qid, answers[a]] for (qid, _), a in zip(chunk, best)]
    scored = [question_accuracy(a, references[q].answers) for part in all_gather_json(predicted) for q, a in part]
    return {"vqa_accuracy": 100.0 * float(np.mean(scored)), "questions": float(len(scored))}


def retrieval_metrics(model, collator: VLCollator, samples: Sequence[Sample], *, batch_size: int,
                      max_images: int = 100) -> dict[str, float]:  # fmt: skip
    """Recall on (at most `max_images`) validation images and all their captions, every image × every text."""
    images = unique_images(samples)[:max_images]
    keep = {image_id for _, image_id in images}
    texts = [s for s in samples if s.image_id in keep]
    if hasattr(model, "encode_batch"):
        scores = _dual_scores(model, collator, images, texts, batch_size)
    else:
        scores = _cross_scores(model, collator, images, texts, batch_size)
    return retrieval_recall(scores, [s.image_id for s in texts], [i for _, i in images])


def _dual_scores(model, collator, images, texts, batch_size) -> np.ndarray:
    image_emb = image_embeddings(model, collator, [index for index, _ in images], batch_size)
    text_emb = text_embeddings(model, collator, texts, batch_size)
    return (image_emb @ text_emb.T).float().cpu().numpy()


def _cross_scores(model, collator, images, texts, batch_size) -> np.ndarray:
    """Every (image, text) pair through the cross-encoder; rows shared out over processes, then gathered."""
    mine = []
    for row in _mine(list(range(len(images)))):
        image_index, image_id = images[row]
        paired = [Sample(image_index, image_id, s.text) for s in texts]
        mine.append([row, itm_pair_scores(model, collator, paired, batch_size).tolist()])
    matrix = np.zeros((len(images), len(texts)))
    for part in all_gather_json(mine):
        for row, values in part:
            matrix[row] = values
    return matrix


def pretrain_metrics(model, collator: VLCollator, samples: Sequence[Sample], *, batch_size: int) -> dict[str, float]:
    """Negative mean validation loss (MLM + ITM), masks and negatives drawn from a fixed generator."""
    generator = torch.Generator().manual_seed(0)
    losses = []
    for chunk in batched(_mine(samples), batch_size):
        batch = collator(chunk).to(_device(model))
        prepared, targets = model.prepare(batch.vl, batch.targets, generator=generator)
        losses.append([float(model.forward_loss(prepared, targets)["loss"]), len(chunk)])
    gathered = [item for part in all_gather_json(losses) for item in part]
    total = sum(n for _, n in gathered)
    return {"neg_loss": -sum(loss * n for loss, n in gathered) / max(total, 1)}
