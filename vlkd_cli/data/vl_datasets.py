"""Training samples over a `regions` artifact: (image, text) pairs for captioning, retrieval and pre-training,
(image, question, soft answer scores) for VQA — and the collator that builds the shared VL layout.

Region data are read per image from the memory-mapped artifact when a batch is collated, so memory does not
grow with the data set. Object tags (Oscar) are the category names of the image's region labels, in region order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.errors import InputError
from vlkd_cli.structures.vl_batch import VLBatch, build_batch

FEATURE_SOURCES = ("student", "teacher")


@dataclass(frozen=True)
class Sample:
    """One training item: the image's position in the regions artifact, its text, and task targets."""

    image_index: int
    image_id: int
    text: str
    target: Mapping[int, float] | None = None  # VQA soft scores {answer index: score}


@dataclass
class TrainBatch:
    """A collated batch: the VL inputs and the task targets (what `TaskModel.forward_loss` takes)."""

    vl: VLBatch
    targets: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device: torch.device) -> TrainBatch:
        return TrainBatch(self.vl.to(device), {k: v.to(device) for k, v in self.targets.items()})

    def __len__(self) -> int:
        return self.vl.batch_size


class SampleList(Dataset):
    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]


def caption_samples(regions: Regions, captions: Mapping[int, Sequence[str]], *, source: str) -> list[Sample]:
    """One sample per (image, caption); every annotated image must have regions (exit 3 otherwise)."""
    check_coverage(regions, captions.keys(), source)
    return [
        Sample(regions.index_of(image_id), int(image_id), caption)
        for image_id in sorted(captions)
        for caption in captions[image_id]
    ]


def vqa_samples(regions: Regions, questions: Mapping[int, Any], targets: Mapping[int, Mapping[int, float]] | None,
                *, source: str) -> list[Sample]:  # fmt: skip
    """One sample per question (sorted by question id); `targets[qid]` are its soft answer scores."""
    check_coverage(regions, {q.image_id for q in questions.values()}, source)
    return [
        Sample(regions.index_of(q.image_id), int(q.image_id), q.question, None if targets is None else targets[qid])
        for qid, q in sorted(questions.items())
    ]


def reindexed(samples: Sequence[Sample], regions: Regions) -> list[Sample]:
    """The same samples with `image_index` looked up by image id in another regions set (InputError if absent)."""
    return [Sample(regions.index_of(s.image_id), s.image_id, s.text) for s in samples]


def check_coverage(regions: Regions, image_ids, source: str) -> None:
    """Every image the annotations use must be in the regions artifact."""
    known = set(int(i) for i in regions.image_ids)
    missing = sorted(int(i) for i in image_ids if int(i) not in known)
    if missing:
        raise InputError(
            f"{len(missing)} images of {source} have no regions in {regions.path} (e.g. ids {missing[:5]}): "
            "extract regions for them, or pass the matching --split",
            regions.path,
        )


class VLCollator:
    """Build `TrainBatch`es in a model's layout from samples (features from one side of the regions)."""

    def __init__(self, regions: Regions, tokenizer, *, features: str, batch_kwargs: dict[str, Any],
                 use_tags: bool, num_answers: int | None = None) -> None:  # fmt: skip
        if features not in FEATURE_SOURCES:
            raise ValueError(f"features must be one of {FEATURE_SOURCES}")
        self.regions, self.tokenizer, self.features = regions, tokenizer, features
        self.batch_kwargs = batch_kwargs
        self.num_answers = num_answers
        names = {int(c["id"]): str(c.get("name", c["id"])) for c in regions.categories}
        self.tag_names = names if use_tags and batch_kwargs.get("max_tag_len", 0) > 0 else None

    def region_inputs(self, image_indices: Sequence[int]) -> tuple[list, list, list, list[list[str]] | None]:
        """Features (n, D) float32, boxes (n, 4), sizes and tags of each image."""
        feats, boxes, sizes, tags = [], [], [], []
        for index in image_indices:
            image = self.regions.image(index, student=self.features == "student", teacher=self.features == "teacher")
            rows = image.student_features if self.features == "student" else image.teacher_features
            feats.append(torch.from_numpy(rows.astype("float32")))
            boxes.append(torch.from_numpy(image.boxes.copy()))
            sizes.append(image.size)
            if self.tag_names is not None:
                tags.append([self.tag_names[int(c)] for c in image.labels if int(c) in self.tag_names])
        return feats, boxes, sizes, (tags if self.tag_names is not None else None)

    def __call__(self, samples: Sequence[Sample]) -> TrainBatch:
        feats, boxes, sizes, tags = self.region_inputs([s.image_index for s in samples])
        vl = build_batch(self.tokenizer, [s.text for s in samples], tags, feats, boxes, sizes, **self.batch_kwargs)
        targets = {"image_ids": torch.tensor([s.image_id for s in samples], dtype=torch.long)}
        if self.num_answers is not None:
            scores = torch.zeros((len(samples), self.num_answers))
            for row, sample in enumerate(samples):
                for answer, score in (sample.target or {}).items():
                    scores[row, answer] = score
            targets["answer_targets"] = scores
        return TrainBatch(vl, targets)

    def images_only(self, image_indices: Sequence[int]) -> VLBatch:
        """A batch with empty captions (for decoding) or for encoding the image side."""
        feats, boxes, sizes, tags = self.region_inputs(image_indices)
        return build_batch(self.tokenizer, None, tags, feats, boxes, sizes, **self.batch_kwargs)
