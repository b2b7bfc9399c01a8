"""How often DCD's "hard negatives" are true of the image: a finished `vlkd demo` run's pools, checked against the
scenes the demo drew.

DCD's pools hold captions of OTHER images, and the loss treats every one of them as a negative. A demo scene is a
set of objects (shape, colour, size) and its captions are drawn from a small grammar over them, so a caption of
another image can describe this one exactly. For each training image this script takes the candidates a pool is drawn
from (`vlkd_cli.tasks.dcd_pools.retriever_candidates`: the M = 2 (P − 1) top captions of other images under the
demo's dual-encoder retriever) and as many captions of other images drawn at random (the released pools), and
counts how many of them
  - repeat one of the image's own captions word for word,
  - come from an image with the same objects (the same multiset of shape + colour; sizes and layout may differ), or
  - name no colour at all ("four objects on a striped background", "two shapes of different sizes"): generic
    captions that are true of many scenes.

Usage:  python bench/dcd_false_negatives.py --demo demo-quick [--pool 8] [--seed 0]
Prints a markdown table (docs/benchmarks.md, "DCD on demo data: why it does not pay").
"""

from __future__ import annotations

import argparse
import collections
import random
from pathlib import Path

import numpy as np
import torch

from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.task_config import DataConfig
from vlkd_cli.data.task_data import load_task_data
from vlkd_cli.jsonfile import read_json
from vlkd_cli.tasks.dcd_pools import candidates_per_pool, image_rows, retriever_candidates
from vlkd_cli.tasks.inference import load_inference_model


def scene_objects(instances: Path) -> dict[int, tuple]:
    """Image id → its objects as a sorted tuple of (category, colour)."""
    objects = collections.defaultdict(list)
    for a in read_json(instances)["annotations"]:
        objects[a["image_id"]].append((a["category_id"], a.get("attributes", {}).get("color")))
    return {image: tuple(sorted(found)) for image, found in objects.items()}


def normalised(caption: str) -> str:
    return " ".join(caption.lower().replace(".", " ").split())


def false_negative_rates(table: np.ndarray, train: list, rows: dict[int, int], objects: dict[int, tuple],
                         colours: set[str]) -> dict[str, float]:  # fmt: skip
    """Shares of the (I, M) candidate table (indices into `train`) that repeat an own caption, share the scene's
    objects, or name no colour."""
    own = collections.defaultdict(set)
    for sample in train:
        own[sample.image_id].add(normalised(sample.text))
    counts = collections.Counter()
    for image_id, row in rows.items():
        for j in table[row]:
            candidate = train[int(j)]
            counts["repeats"] += normalised(candidate.text) in own[image_id]
            counts["same_scene"] += objects.get(candidate.image_id) == objects.get(image_id)
            counts["generic"] += not colours & set(normalised(candidate.text).split())
    total = table.size
    return {key: counts[key] / total for key in ("repeats", "same_scene", "generic")}


def random_table(train: list, rows: dict[int, int], top: int, seed: int) -> np.ndarray:
    """(I, top) captions of other images drawn uniformly (the released random pools)."""
    rng = random.Random(seed)
    table = np.empty((len(rows), top), dtype=np.int64)
    for image_id, row in rows.items():
        picked = []
        while len(picked) < top:
            j = rng.randrange(len(train))
            if train[j].image_id != image_id:
                picked.append(j)
        table[row] = picked
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo-quick"))
    parser.add_argument("--pool", type=int, default=8, help="DCD's pool size P (the demo's quick mode: 8)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    data = args.demo / "data"
    regions = Regions([args.demo / "regions-teacher.safetensors"])
    task = load_task_data(DataConfig(task="retrieval", annotations=data / "karpathy.json", split="train"), regions,
                          source=str(data / "karpathy.json"))  # fmt: skip
    train, rows = task.train, image_rows(task.train)
    objects = scene_objects(data / "instances.json")
    colours = {colour for found in objects.values() for _, colour in found if colour}
    top = candidates_per_pool(args.pool)
    retriever = load_inference_model(args.demo / "retriever", regions, tasks=("retrieval",), device=torch.device("cpu"))
    tables = {
        "random captions of other images (the released pools)": random_table(train, rows, top, args.seed),
        "the retriever's top captions of other images (the demo's cross-student pools)": retriever_candidates(
            retriever.model, retriever.collator, train, top).numpy(),
    }
    same_objects = np.mean([sum(objects.get(s.image_id) == objects.get(i) for s in train) / len(train)
                            for i in list(rows)[:200]])  # fmt: skip
    print(f"{len(rows)} training images, {len(train)} captions, {top} candidates per image; "
          f"a caption drawn at random comes from a scene with the same objects {100 * same_objects:.1f} % of the time")
    print("| candidates | repeat an own caption word for word | from a scene with the same objects | name no colour |")
    print("|---|---:|---:|---:|")
    for name, table in tables.items():
        rates = false_negative_rates(table, train, rows, objects, colours)
        print(f"| {name} | {100 * rates['repeats']:.1f} % | {100 * rates['same_scene']:.1f} % | "
              f"{100 * rates['generic']:.1f} % |")


if __name__ == "__main__":
    main()
