"""The caption recipe on real photographs with human-written captions: does it learn, and what does pretrained
text buy?

The data are `bench/real_retrieval.py`'s (Tux Paint's photographed stamps, one caption a person wrote per image,
423 train / 50 val / 100 test; the object's box and the whole image as proposals; real ImageNet EfficientNet-Lite
features). Per seed, two caption models differ only in their start:
  * `sentence-transformers/all-MiniLM-L6-v2` (the packaged weights; BERT's uncased 30,522-word vocabulary);
  * `minilm-l6`, the same shape from random weights, with a WordPiece vocabulary learned from the captions.
Both read the Lite2 features of the two boxes, 300 steps, batch 32, lr 1e-4, no tags, greedy decoding, scored with
CIDEr-D against the one reference of each test image. The blind bar: the best single caption of the training
set given to every test image (chosen on the test references, so an upper bound for any constant caption).

Then DistillVLM on the same data: the seed-0 random-init model above as the teacher (Lite2 features), students
`demo-student` (2L/128H, the teacher's tokenizer) on the Lite0 features of the same boxes, 300 and 1,500 steps
(`--student-steps`), batch 32, lr 5e-4 (the demo's student recipe), with the demo's KD terms (task + attention
MSE 10 + token NCE 0.5 + logit KD 1) or the task term only, per seed. The boxes are the same for teacher and student, so there is nothing to adapt.

Usage:  python bench/real_caption.py --work /tmp/real-bench [--seeds 0,1,2] [--steps 300] [--student-steps 300,1500]
(`--work` is real_retrieval.py's: the data and regions are built there first when missing.)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from commands import vlkd_once
from real_retrieval import prepare

from vlkd_cli.demo.plan import KD_LOSSES

STARTS = {"all-MiniLM-L6-v2 (pretrained)": "sentence-transformers/all-MiniLM-L6-v2",
          "minilm-l6 (random init)": "minilm-l6"}  # fmt: skip


def best_constant(annotations: Path) -> tuple[float, str]:
    """CIDEr-D of the training caption that scores best when given to every test image, and that caption."""
    from vlkd_cli.eval.cider import cider_d
    from vlkd_cli.eval.ptb_tokenizer import ptb_tokenize

    images = json.loads(annotations.read_text())["images"]
    test = {e["cocoid"]: [ptb_tokenize(e["sentences"][0]["raw"])] for e in images if e["split"] == "test"}
    train = sorted({ptb_tokenize(e["sentences"][0]["raw"]) for e in images if e["split"] == "train"})
    return max((cider_d(test, dict.fromkeys(test, caption))[0], caption) for caption in train)


def train_and_score(work: Path, start: str, seed: int, steps: int, regions: Path, annotations: Path) -> float:
    name = f"caption-{start.rsplit('/', 1)[-1]}-seed{seed}"
    model = vlkd_once(work / name, "finetune", "--task", "caption", "--model", start, "--features", "teacher",
                      "--regions", regions, "--annotations", annotations, "--split", "train", "--no-tags",
                      "--max-tag-len", 2, "--max-regions", 4, "--max-steps", steps, "--batch-size", 32, "--lr", "1e-4",
                      "--seed", seed, "--device", "cpu", "--overwrite", "--out", work / name)  # fmt: skip
    return split_cider(work, model, regions, annotations)


def split_cider(work: Path, model: Path, regions: Path, annotations: Path) -> float:
    """CIDEr-D of `model`'s greedy captions of the test split (evaluated once into work/eval/<model name>)."""
    out = vlkd_once(work / "eval" / model.name, "eval-caption", "--model", model, "--regions", regions,
                    "--annotations", annotations, "--split", "test", "--device", "cpu", "--out",
                    work / "eval" / model.name)  # fmt: skip
    return json.loads((out / "metrics.json").read_text())["CIDEr"]


def distill_and_score(work: Path, teacher: Path, kd: bool, seed: int, steps: int, regions: Path,
                      annotations: Path) -> float:  # fmt: skip
    name = f"student-{'kd' if kd else 'no-kd'}-seed{seed}" + ("" if steps == 300 else f"-{steps}steps")
    losses = KD_LOSSES if kd else ["--loss", "task=1"]
    model = vlkd_once(work / name, "distill", "--teacher", teacher, "--student", "demo-student", "--regions", regions,
                      "--task", "caption", "--annotations", annotations, "--split", "train", "--no-tags",
                      "--max-steps", steps, "--batch-size", 32, "--lr", "5e-4", "--seed", seed, "--device", "cpu",
                      "--overwrite", *losses, "--out", work / name)  # fmt: skip
    return split_cider(work, model, regions, annotations)


def row(label: str, scores: list[float]) -> str:
    spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return f"| {label} | {' / '.join(f'{x:.1f}' for x in scores)} | {statistics.mean(scores):.1f} ± {spread:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/real-bench"))
    parser.add_argument("--deb", type=Path, default=None, help="a downloaded tuxpaint-stamps-default_*.deb")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--student-steps", default="300,1500")
    args = parser.parse_args()
    work = args.work.resolve()
    annotations, regions = prepare(work, args.deb, test=100, val=50, size=224)
    seeds = [int(s) for s in args.seeds.split(",")]
    score, caption = best_constant(annotations)
    print("| caption model | CIDEr-D × 100 per seed | mean ± std |")
    print("|---|---|---|")
    print(f'| best constant caption ("{caption}", chosen on the test references) | | {100 * score:.1f} |')
    for label, start in STARTS.items():
        print(row(label, [100 * train_and_score(work, start, s, args.steps, regions, annotations) for s in seeds]))
    teacher = work / "caption-minilm-l6-seed0"
    for steps in (int(n) for n in args.student_steps.split(",")):
        for kd in (False, True):
            scores = [100 * distill_and_score(work, teacher, kd, s, steps, regions, annotations) for s in seeds]
            print(row(f"demo-student (2L/128H, Lite0), {steps} steps, {'KD from' if kd else 'task term only, teacher'}"
                      " minilm-l6 seed 0", scores))  # fmt: skip


if __name__ == "__main__":
    main()
