"""The demo data laid out like the public data sets, so the real-data path (the README's walk-through) runs on it
unchanged: `vlkd make-demo-data --layout coco2014|flickr30k`.

coco2014 (the working directory of the walk-through)::

    coco/train2014/COCO_train2014_000000000001.jpg ...    the Karpathy train images
    coco/val2014/COCO_val2014_000000000007.jpg ...        val, test and restval images (as in Karpathy's split)
    coco/annotations/captions_{train,val}2014.json        COCO captions, per image folder
    coco/annotations/instances_{train,val}2014.json       COCO instances (boxes, categories)
    dataset_coco.json                                     Karpathy's split file (filepath = train2014 / val2014)
    v2_OpenEnded_mscoco_{train,val}2014_questions.json    VQA v2 questions, per image folder
    v2_mscoco_{train,val}2014_annotations.json            VQA v2 annotations
    teacher_detections.json                               a detector's COCO results (the teacher's own regions)

flickr30k::

    flickr30k-images/1.jpg ...                            image id = the number in the file name
    dataset_flickr30k.json                                Karpathy's split file (filename only, no cocoid)

Images are re-encoded as JPEG (quality 95), as the public sets are; every other field is the flat demo's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LAYOUTS = ("flat", "coco2014", "flickr30k")
COCO_FOLDERS = ("train2014", "val2014")


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value) + "\n", encoding="utf-8")


def _jpeg(source: Path, target: Path) -> None:
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").save(target, format="JPEG", quality=95)


def _folder_of(karpathy: dict[str, Any]) -> dict[int, str]:
    """Image id → COCO 2014 folder: Karpathy's train images come from train2014, the rest from val2014."""
    return {image["cocoid"]: "train2014" if image["split"] == "train" else "val2014" for image in karpathy["images"]}


def _coco_subset(data: dict[str, Any], ids: set[int], name_of: dict[int, str], key: str) -> dict[str, Any]:
    """A COCO-style file restricted to `ids`, its images renamed; `key` names the per-image records."""
    images = [{**image, "file_name": name_of[image["id"]]} for image in data["images"] if image["id"] in ids]
    return {**data, "images": images, key: [a for a in data[key] if a["image_id"] in ids]}


def coco2014_layout(flat: Path, out: Path) -> dict[str, int]:
    """Lay the flat demo data set `flat` out under `out` as the public COCO 2014 + Karpathy + VQA v2 files."""
    karpathy = _read(flat / "karpathy.json")
    folder_of = _folder_of(karpathy)
    name_of = {i: f"COCO_{folder}_{i:012d}.jpg" for i, folder in folder_of.items()}
    for image in karpathy["images"]:
        _jpeg(flat / "images" / image["filename"], out / "coco" / folder_of[image["cocoid"]] / name_of[image["cocoid"]])
    images = [{**image, "filepath": folder_of[image["cocoid"]], "filename": name_of[image["cocoid"]]}
              for image in karpathy["images"]]  # fmt: skip
    _write(out / "dataset_coco.json", {"dataset": "coco", "images": images})
    captions, instances = _read(flat / "captions.json"), _read(flat / "instances.json")
    questions, answers = _read(flat / "questions.json"), _read(flat / "annotations.json")
    for folder in COCO_FOLDERS:
        ids = {i for i, f in folder_of.items() if f == folder}
        _write(out / "coco" / "annotations" / f"captions_{folder}.json", _coco_subset(captions, ids, name_of, "annotations"))
        _write(out / "coco" / "annotations" / f"instances_{folder}.json",
               _coco_subset(instances, ids, name_of, "annotations"))  # fmt: skip
        _write(out / f"v2_OpenEnded_mscoco_{folder}_questions.json",
               {**questions, "data_subtype": folder, "questions": [q for q in questions["questions"] if q["image_id"] in ids]})  # fmt: skip
        _write(out / f"v2_mscoco_{folder}_annotations.json",
               {**answers, "data_subtype": folder, "annotations": [a for a in answers["annotations"] if a["image_id"] in ids]})  # fmt: skip
    detections = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
                  for a in instances["annotations"]]  # fmt: skip
    _write(out / "teacher_detections.json", detections)
    return {"images": len(images), **{folder: sum(f == folder for f in folder_of.values()) for folder in COCO_FOLDERS}}


def flickr30k_layout(flat: Path, out: Path) -> dict[str, int]:
    """Lay the flat demo data set out as Flickr30K: `flickr30k-images/` and `dataset_flickr30k.json`."""
    karpathy = _read(flat / "karpathy.json")
    images = []
    for image in karpathy["images"]:
        name = f"{image['cocoid']}.jpg"
        _jpeg(flat / "images" / image["filename"], out / "flickr30k-images" / name)
        entry = {k: v for k, v in image.items() if k not in ("cocoid", "filepath")}
        images.append({**entry, "filename": name})
    _write(out / "dataset_flickr30k.json", {"dataset": "flickr30k", "images": images})
    return {"images": len(images)}
