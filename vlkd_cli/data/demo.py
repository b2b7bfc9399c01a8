"""The deterministic demo data set: images of coloured shapes with COCO, VQA v2 and Karpathy annotations.

`make_demo_data(out)` writes, for `num_images` images:

- `images/demo_{id:012d}.png` (ids from 1), 1-4 non-overlapping shapes on a background;
- `instances.json` (COCO instances: the shapes are the categories), `captions.json` (COCO captions, 5 per image);
- `questions.json` + `annotations.json` (VQA v2, 3-5 questions per image, 10 answers each);
- `karpathy.json` (train / restval / val / test split, the same captions);
- `priors.json`: what a model that ignores the image scores (answer prior per question type; a caption naming
  only the largest object), so that trained models can be shown to beat it.

Same arguments, same bytes. Only numpy and Pillow are used.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vlkd_cli.data.demo_scenes import SHAPES, Scene, render_scene, sample_scene
from vlkd_cli.data.demo_text import (
    QuestionBalancer,
    answer_type,
    human_answers,
    make_captions,
    make_questions,
    question_type,
)
from vlkd_cli.errors import UsageError
from vlkd_cli.eval.cider import cider_d, simple_tokenize
from vlkd_cli.eval.vqa import question_accuracy, summarize_accuracy

MIN_IMAGES = 10
MAX_IMAGES = 10_000_000
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 2048
SPLIT_FRACTIONS = {"restval": 0.1, "val": 0.1, "test": 0.1}
"""Karpathy split sizes as fractions of all images (each at least one image); the rest is `train`."""

INFO = {
    "description": "vlkd demo data: coloured shapes (synthetic, deterministic)",
    "version": "1.0",
    "year": 2024,
    "contributor": "vlkd make-demo-data",
    "date_created": "1970-01-01",
}
LICENSE = {"id": 1, "name": "CC0 1.0", "url": "https://creativecommons.org/publicdomain/zero/1.0/"}


def image_file_name(image_id: int) -> str:
    """COCO-style file name of a demo image, e.g. `demo_000000000001.png`.

    Args:
        image_id: The image id (from 1).

    Returns:
        The file name relative to `images/`.
    """
    return f"demo_{image_id:012d}.png"


def _is_int(value: object) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def validate_demo_args(num_images: int, image_size: int, seed: int) -> None:
    """Refuse arguments the generator cannot honour.

    Args:
        num_images: Number of images.
        image_size: Side of the square images in pixels.
        seed: Random seed.

    Raises:
        UsageError: A value is out of range.
    """
    if not _is_int(num_images) or not MIN_IMAGES <= num_images <= MAX_IMAGES:
        raise UsageError(f"--num-images must be an integer in [{MIN_IMAGES}, {MAX_IMAGES}], got {num_images!r}")
    if not _is_int(image_size) or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise UsageError(f"--image-size must be an integer in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], got {image_size!r}")
    if not _is_int(seed) or seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed!r}")


def _write_json(path: Path, payload: object, indent: int | None = None) -> None:
    """Write JSON atomically (temporary file in the same directory, then `os.replace`)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            separators = None if indent else (",", ":")
            fh.write(json.dumps(payload, ensure_ascii=False, indent=indent, separators=separators) + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _save_png(image, path: Path) -> None:
    """Write a PNG atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        image.save(tmp, format="PNG", compress_level=6)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _split_count(name: str, num_images: int) -> int:
    return max(1, int(round(SPLIT_FRACTIONS[name] * num_images)))


def max_test_images(num_images: int) -> int:
    """The largest test split that leaves restval, val and at least one train image."""
    return num_images - 1 - sum(_split_count(name, num_images) for name in SPLIT_FRACTIONS if name != "test")


def karpathy_splits(num_images: int, seed: int, test_images: int | None = None) -> list[str]:
    """Split name of each image (index order): train, restval, val, test; none empty for >= `MIN_IMAGES` images.

    Args:
        num_images: Number of images.
        seed: Random seed.
        test_images: The test split's size (default: `SPLIT_FRACTIONS`).

    Returns:
        One split name per image.
    """
    perm = np.random.default_rng([seed, 7_000_001]).permutation(num_images)
    splits = ["train"] * num_images
    start = 0
    for name in SPLIT_FRACTIONS:
        count = test_images if name == "test" and test_images is not None else _split_count(name, num_images)
        for index in perm[start : start + count]:
            splits[int(index)] = name
        start += count
    return splits


def _instances(scene: Scene, image_id: int, next_id: int) -> list[dict]:
    """COCO instance annotations of one scene, ids from `next_id`."""
    anns = []
    for k, obj in enumerate(scene.objects):
        anns.append({
            "id": next_id + k,
            "image_id": image_id,
            "category_id": SHAPES.index(obj.shape) + 1,
            "bbox": [float(v) for v in obj.bbox],
            "area": float(obj.area),
            "iscrowd": 0,
            "segmentation": [obj.polygon],
            "attributes": {"color": obj.color, "size": obj.size},
        })  # fmt: skip
    return anns


class _Collector:
    """Accumulates the records of every output file while images are generated."""

    def __init__(self) -> None:
        self.images: list[dict] = []
        self.instances: list[dict] = []
        self.captions: list[dict] = []
        self.questions: list[dict] = []
        self.vqa: list[dict] = []
        self.largest: dict[int, list[str]] = {}

    def add(self, image_id: int, scene: Scene, captions: list[str], questions: list, rng: np.random.Generator) -> None:
        """Record one image's annotations."""
        size = scene.image_size
        self.images.append({"id": image_id, "file_name": image_file_name(image_id), "height": size, "width": size})
        self.instances += _instances(scene, image_id, len(self.instances) + 1)
        for caption in captions:
            self.captions.append({"id": len(self.captions) + 1, "image_id": image_id, "caption": caption})
        for k, cand in enumerate(questions):
            qid = image_id * 1000 + k
            answers = human_answers(cand.answer, rng)
            top = Counter(a["answer"] for a in answers).most_common(1)[0][0]
            self.questions.append({"image_id": image_id, "question": cand.question, "question_id": qid})
            self.vqa.append({
                "question_id": qid,
                "image_id": image_id,
                "question_type": question_type(cand.question),
                "answer_type": answer_type(cand.answer),
                "multiple_choice_answer": top,
                "answers": answers,
            })  # fmt: skip
        big = max(scene.objects, key=lambda o: o.area)
        self.largest[image_id] = ["an" if big.color[0] in "aeiou" else "a", big.color, big.shape]


def _karpathy(collector: _Collector, splits: list[str]) -> dict:
    """The Karpathy-format split file."""
    by_image: dict[int, list[dict]] = {}
    for ann in collector.captions:
        by_image.setdefault(ann["image_id"], []).append(ann)
    images = []
    for index, (image, split) in enumerate(zip(collector.images, splits)):
        anns = by_image[image["id"]]
        sentences = [
            {"raw": a["caption"], "tokens": simple_tokenize(a["caption"]), "imgid": index, "sentid": a["id"] - 1}
            for a in anns
        ]
        images.append({
            "filepath": "",
            "filename": image["file_name"],
            "imgid": index,
            "cocoid": image["id"],
            "split": split,
            "sentids": [s["sentid"] for s in sentences],
            "sentences": sentences,
        })  # fmt: skip
    return {"dataset": "coco", "images": images}


def _vqa_files(collector: _Collector) -> tuple[dict, dict]:
    """The VQA v2 questions and annotations files."""
    common = {
        "info": INFO,
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "data_subtype": "demo",
        "license": LICENSE,
    }
    return {**common, "questions": collector.questions}, {**common, "annotations": collector.vqa}


def answer_prior(annotations: list[dict], train_ids: set[int]) -> dict[str, str]:
    """Most common `multiple_choice_answer` per question type on the training images (ties: smallest string).

    Args:
        annotations: VQA annotations.
        train_ids: Image ids of the training split.

    Returns:
        question type -> prior answer; the key "" holds the overall most common answer (for unseen types).
    """
    per_type: dict[str, Counter] = {}
    overall: Counter = Counter()
    for ann in annotations:
        if ann["image_id"] in train_ids:
            per_type.setdefault(ann["question_type"], Counter())[ann["multiple_choice_answer"]] += 1
            overall[ann["multiple_choice_answer"]] += 1

    def best(counter: Counter) -> str:
        top = max(counter.values())
        return min(a for a, c in counter.items() if c == top)

    prior = {qtype: best(counter) for qtype, counter in sorted(per_type.items())}
    prior[""] = best(overall) if overall else "yes"
    return prior


def _priors(collector: _Collector, splits: list[str]) -> dict:
    """Scores of image-blind baselines on the test split (VQA answer prior, largest-object caption)."""
    split_of = {image["id"]: split for image, split in zip(collector.images, splits)}
    train_ids = {i for i, s in split_of.items() if s in ("train", "restval")}
    test_ids = [i for i, s in split_of.items() if s == "test"]
    prior = answer_prior(collector.vqa, train_ids)
    test_set = set(test_ids)
    test_anns = [a for a in collector.vqa if a["image_id"] in test_set]
    accs = {}
    for ann in test_anns:
        guess = prior.get(ann["question_type"], prior[""])
        accs[ann["question_id"]] = question_accuracy(guess, [x["answer"] for x in ann["answers"]])
    summary = summarize_accuracy(accs, test_anns)
    refs: dict[int, list[list[str]]] = {i: [] for i in test_ids}
    for ann in collector.captions:
        if ann["image_id"] in test_set:
            refs[ann["image_id"]].append(simple_tokenize(ann["caption"]))
    cider, _ = cider_d(refs, {i: collector.largest[i] for i in test_ids})
    return {
        "vqa_prior_accuracy": {
            "overall": summary["overall"],
            "per_question_type": summary["perQuestionType"],
            "per_answer_type": summary["perAnswerType"],
            "prior_answers": {k: v for k, v in prior.items() if k},
            "num_test_questions": len(test_anns),
        },
        "caption_largest_object_cider": round(cider, 6),
        "caption_largest_object_example": " ".join(collector.largest[test_ids[0]]),
    }


def make_demo_data(
    out: Path,
    *,
    num_images: int = 200,
    image_size: int = 128,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    test_images: int | None = None,
) -> dict:
    """Generate the demo data set into `out/` (created if needed; files of the same names are replaced).

    Args:
        out: Output directory.
        num_images: Number of images (at least `MIN_IMAGES`, so that every split is non-empty).
        image_size: Side of the square images in pixels, in [32, 2048].
        seed: Random seed; the same arguments give byte-identical files.
        progress: Called with the number of images done after each image.
        test_images: The Karpathy test split's size (default 10 % of the images).

    Returns:
        The content of `priors.json`: counts, split sizes, `vqa_prior_accuracy` (percent, official rounding;
        answer prior per question type learned on train+restval, scored on test) and
        `caption_largest_object_cider` (CIDEr-D on the test split of "a <colour> <shape>" naming the largest object,
        simple tokenization, pycocoevalcap scale).

    Raises:
        UsageError: An argument is out of range or `out` is an existing file.
    """
    validate_demo_args(num_images, image_size, seed)
    limit = max_test_images(num_images)
    if test_images is not None and not (_is_int(test_images) and 1 <= test_images <= limit):
        raise UsageError(f"--test-images must be 1 to {limit} for {num_images} images (train, restval and val keep "
                         f"theirs), got {test_images!r}")  # fmt: skip
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError("exists and is not a directory", path=out)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    collector = _Collector()
    balancer = QuestionBalancer()
    for image_id in range(1, num_images + 1):
        scene = sample_scene(np.random.default_rng([seed, image_id, 0]), image_size)
        image = render_scene(scene, np.random.default_rng([seed, image_id, 1]))
        _save_png(image, images_dir / image_file_name(image_id))
        text_rng = np.random.default_rng([seed, image_id, 2])
        captions = make_captions(scene, text_rng)
        questions = make_questions(scene, text_rng, balancer)
        collector.add(image_id, scene, captions, questions, text_rng)
        if progress is not None:
            progress(image_id)
    splits = karpathy_splits(num_images, seed, test_images)
    categories = [{"id": k + 1, "name": name, "supercategory": "shape"} for k, name in enumerate(SHAPES)]
    base = {"info": INFO, "licenses": [LICENSE], "images": collector.images}
    _write_json(out / "instances.json", {**base, "annotations": collector.instances, "categories": categories})
    _write_json(out / "captions.json", {**base, "annotations": collector.captions})
    questions_file, annotations_file = _vqa_files(collector)
    _write_json(out / "questions.json", questions_file)
    _write_json(out / "annotations.json", annotations_file)
    _write_json(out / "karpathy.json", _karpathy(collector, splits))
    priors = {
        "num_images": num_images,
        "num_questions": len(collector.questions),
        "num_captions": len(collector.captions),
        "num_instances": len(collector.instances),
        "image_size": image_size,
        "seed": seed,
        "splits": dict(sorted(Counter(splits).items())),
        **_priors(collector, splits),
    }
    _write_json(out / "priors.json", priors, indent=2)
    return priors
