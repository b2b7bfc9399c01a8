"""The `vlkd demo` pipeline as a list of vlkd commands: generated data → student detector → regions → caption
teacher → teacher adaptation → caption students (no KD, KD without adaptation, KD with adaptation; all start from
the unadapted teacher's layers) → a dual-encoder
retriever → retrieval teacher (cross-encoder, negatives mined by the retriever) → retrieval students (a cross and a
dual encoder from the teacher's layers, each without and with DCD) → evaluation on the Karpathy test split →
latency. Full mode adds a teacher detector (the teacher's own regions) and VQA.

Every student of one task shares one configuration (steps, lr, batch, data, seeds, initialisation) and differs only
in its loss terms; each is evaluated once, after its last step (no checkpoint selection on validation data).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DemoSizes:
    """How big each part of the demo is."""

    images: int
    detector_epochs: int
    teacher_steps: int
    adapt_steps: int
    student_steps: int
    retrieval_teacher_steps: int
    retriever_steps: int  # the dual encoder that mines the teacher's negatives and the cross students' pools
    retrieval_student_steps: int
    dcd_pool: int  # captions per image the retrieval teacher scores (the positive + pool − 1 of other images)
    dcd_k: int  # of which the student learns from the positive + the k − 1 hardest
    seeds: int
    vqa: bool
    teacher_detector: bool
    test_images: int = 100  # the Karpathy test split (retrieval: 5 folds of test_images / 5, as COCO's 1K protocol)
    folds: int = 5
    image_size: int = 128
    batch_size: int = 32
    lr: float = 5e-4
    max_tag_len: int = 10  # the layout: a demo scene has at most 8 objects (tags) and the detector keeps 10
    max_regions: int = 10
    retrieval_teacher_batch: int = 16
    cross_student_batch: int = 16  # a cross pair costs a forward pass per candidate (and the teacher's, with DCD)
    dual_student_batch: int = 32
    retrieval_negatives: int = 7  # the retrieval teacher ranks each image's caption against this many others
    pool_refresh: int = 25  # the dual DCD student re-ranks its own pools every this many steps
    gallery_images: int = 100  # the gallery whose ranking time is measured (full mode: the paper's 1K × 5K)
    gallery_texts: int = 500
    rerank_k: int = 16  # two-stage: the teacher re-ranks the dual student's top k
    latency_pairs: int = 2000  # cross-encoders are timed on this many pairs, extrapolated to the whole gallery


QUICK = DemoSizes(images=400, detector_epochs=5, teacher_steps=300, adapt_steps=100, student_steps=100,
                  retrieval_teacher_steps=150, retriever_steps=100, retrieval_student_steps=50, dcd_pool=8,
                  dcd_k=4, seeds=3, vqa=False, teacher_detector=False, cross_student_batch=8, dual_student_batch=16,
                  latency_pairs=500)  # fmt: skip
FULL = DemoSizes(images=600, detector_epochs=6, teacher_steps=400, adapt_steps=150, student_steps=200,
                 retrieval_teacher_steps=150, retriever_steps=100, retrieval_student_steps=100, dcd_pool=8,
                 dcd_k=4, seeds=3, vqa=True, teacher_detector=True, cross_student_batch=8, dual_student_batch=16,
                 latency_pairs=1000, gallery_images=1000, gallery_texts=5000)  # fmt: skip

CAPTION_STUDENTS = {
    "student no KD": None,
    "student KD no adaptation": "unadapted",
    "student KD + adaptation": "adapted",
}
KD_LOSSES = ["--loss", "task=1", "--loss", "attention_mse=10", "--loss", "token_nce=0.5", "--loss", "logit_kd=1"]
# A DCD student keeps its no-DCD twin's own objective (the DCD loss alone does not train a dual encoder:
# docs/methods.md, "DCD training in vlkd"); the twin is the same command with the task term only.
DCD_LOSSES = ["--loss", "dcd=1", "--loss", "task=1"]
TASK_LOSS = ["--loss", "task=1"]
RETRIEVAL_STUDENTS = {  # name → (arch, DCD on)
    "cross student no DCD": ("cross", False),
    "cross student DCD": ("cross", True),
    "dual student no DCD": ("dual", False),
    "dual student DCD": ("dual", True),
}


@dataclass
class Step:
    """One vlkd command of the demo (or a small Python action); `out` (a file or directory) marks it done."""

    name: str
    args: list[str]
    out: Path
    action: Callable[[], None] | None = None


@dataclass
class Plan:
    root: Path
    sizes: DemoSizes
    seed: int
    pretrained: bool
    device: str = "cpu"
    steps: list[Step] = field(default_factory=list)

    def add(self, name: str, out: Path, *args) -> Path:
        self.steps.append(Step(name, [str(a) for a in args], out))
        return out

    def add_action(self, name: str, out: Path, action: Callable[[], None]) -> Path:
        self.steps.append(Step(name, [], out, action))
        return out

    def config(self) -> dict:
        return {**asdict(self.sizes), "seed": self.seed, "seeds": self.seeds, "pretrained": self.pretrained,
                "device": self.device, "evaluation": "Karpathy test split, greedy captions, after the last step"}  # fmt: skip

    @property
    def seeds(self) -> list[int]:
        return [self.seed + n for n in range(self.sizes.seeds)]


def build_plan(root: Path, sizes: DemoSizes, *, seed: int, pretrained: bool, device: str = "cpu") -> Plan:
    """Every command of the demo, in order, each on `device` (cpu, cuda, cuda:1, ...)."""
    plan = Plan(Path(root), sizes, seed, pretrained, device)
    data = _data_and_regions(plan)
    _caption(plan, data)
    _retrieval(plan, data)
    if sizes.vqa:
        _vqa(plan, data)
    _latency(plan, data)
    return plan


def _pretrained(plan: Plan) -> list[str]:
    return ["--pretrained"] if plan.pretrained else []


def _data_and_regions(plan: Plan) -> Path:
    r, s = plan.root, plan.sizes
    data = plan.add("generate demo data", r / "data", "make-demo-data", "--out", r / "data", "--num-images", s.images,
                    "--test-images", s.test_images, "--image-size", s.image_size, "--seed", plan.seed)  # fmt: skip
    images, instances, karpathy = data / "images", data / "instances.json", data / "karpathy.json"
    plan.add("train the student detector (EfficientNet-Lite0)", r / "detector", "train-detector", "--images", images,
             "--instances", instances, "--backbone", "tf_efficientnet_lite0", *_pretrained(plan), "--image-size",
             s.image_size, "--epochs", s.detector_epochs, "--batch-size", 16, "--seed", plan.seed, "--out",
             r / "detector")  # fmt: skip
    plan.add("student regions: Lite0 and Lite2 features on the student's boxes", r / "regions.safetensors",
             "extract-regions", "--images", images, "--annotations", karpathy, "--detector", r / "detector",
             "--teacher-backbone", "tf_efficientnet_lite2", *_pretrained(plan), "--out", r / "regions.safetensors")  # fmt: skip
    teacher_regions = r / "regions-teacher.safetensors"
    if s.teacher_detector:
        plan.add("train the teacher detector (EfficientNet-Lite2)", r / "detector-teacher", "train-detector",
                 "--images", images, "--instances", instances, "--backbone", "tf_efficientnet_lite2", *_pretrained(plan),
                 "--image-size", s.image_size, "--epochs", s.detector_epochs, "--batch-size", 16, "--seed", plan.seed,
                 "--out", r / "detector-teacher")  # fmt: skip
        source = ["--detector", r / "detector-teacher"]  # (its "student" features are the detector's own Lite2)
    else:  # a cheaper source than a second detector: the ground-truth boxes as a COCO results file
        plan.add_action("the ground-truth boxes as the teacher's proposals", r / "gt-proposals.json",
                        lambda: write_gt_proposals(instances, r / "gt-proposals.json"))  # fmt: skip
        source = ["--proposals", r / "gt-proposals.json", "--student-backbone", "tf_efficientnet_lite0",
                  "--image-size", s.image_size]  # fmt: skip
    plan.add("the teacher's own regions", teacher_regions, "extract-regions", "--images", images, "--annotations",
             instances, *source, "--teacher-backbone", "tf_efficientnet_lite2", *_pretrained(plan), "--out",
             teacher_regions)  # fmt: skip
    return data


def write_gt_proposals(instances: Path, out: Path) -> None:
    """The ground-truth boxes of a COCO instances file as a COCO detection results file (score 1)."""
    from vlkd_cli.artifacts.atomic import write_text_atomic
    from vlkd_cli.jsonfile import read_json

    annotations = read_json(instances)["annotations"]
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in annotations]  # fmt: skip
    write_text_atomic(out, json.dumps(results))


def _train_args(plan: Plan, data: Path, steps: int, seed: int, out: Path, batch_size: int | None = None) -> list:
    s = plan.sizes
    return ["--annotations", data / "karpathy.json", "--split", "train", "--max-steps", steps, "--batch-size",
            batch_size or s.batch_size, "--lr", s.lr, "--seed", seed, "--device", plan.device, "--out", out,
            "--overwrite"]  # fmt: skip


def _layout(plan: Plan) -> list:
    """The sequence layout of a new model (a distilled preset student takes its teacher's)."""
    return ["--max-tag-len", plan.sizes.max_tag_len, "--max-regions", plan.sizes.max_regions]


def _caption(plan: Plan, data: Path) -> None:
    r, s = plan.root, plan.sizes
    plan.add("caption teacher (demo-teacher) on its own regions", r / "teacher", "finetune", "--task", "caption",
             "--model", "demo-teacher", "--regions", r / "regions-teacher.safetensors", "--features", "teacher",
             *_layout(plan), *_train_args(plan, data, s.teacher_steps, plan.seed, r / "teacher"))  # fmt: skip
    plan.add("adapt the teacher to the student's boxes", r / "teacher-adapted", "adapt-teacher", "--teacher",
             r / "teacher", "--regions", r / "regions.safetensors", "--task", "caption",
             *_train_args(plan, data, s.adapt_steps, plan.seed, r / "teacher-adapted"))  # fmt: skip
    init = plan.add("the caption students' common start: the teacher's layers 0 and 2 (of 4), a new projection for "
                    "the student's features", r / "student-init", "finetune", "--task", "caption", "--model",
                    r / "teacher", "--init-from-teacher", "uniform", "--features", "student", "--regions",
                    r / "regions.safetensors", *_train_args(plan, data, 0, plan.seed, r / "student-init"))  # fmt: skip
    for seed in plan.seeds:
        for name, kind in CAPTION_STUDENTS.items():
            out = student_dir(r, name, seed)
            common = ["--regions", r / "regions.safetensors", "--task", "caption",
                      *_train_args(plan, data, s.student_steps, seed, out)]  # fmt: skip
            if kind is None:
                args = ["finetune", "--model", init, "--features", "student", *common]
            elif kind == "adapted":
                args = ["distill", "--teacher", r / "teacher-adapted", "--student", init, *common, *KD_LOSSES]
            else:
                args = ["distill", "--teacher", r / "teacher", "--student", init, *common, *KD_LOSSES,
                        "--teacher-regions", r / "regions-teacher.safetensors", "--allow-misaligned"]  # fmt: skip
            plan.add(f"{name} (seed {seed})", out, *args)
    evaluate = {"teacher": (r / "teacher", "regions-teacher"), "teacher adapted": (r / "teacher-adapted", "regions")}
    evaluate.update({f"{n} (seed {seed})": (student_dir(r, n, seed), "regions") for n in CAPTION_STUDENTS
                     for seed in plan.seeds})  # fmt: skip
    for name, (model, regions) in evaluate.items():
        plan.add(f"eval-caption {name}", r / "eval" / model.name, "eval-caption", "--model", model, "--regions",
                 r / f"{regions}.safetensors", "--annotations", data / "karpathy.json", "--split", "test",
                 "--no-meteor", "--device", plan.device, "--out", r / "eval" / model.name)  # fmt: skip


def student_dir(root: Path, name: str, seed: int) -> Path:
    return root / "students" / f"{name.replace(' ', '-').replace('+', 'plus')}-seed{seed}"


def _retrieval(plan: Plan, data: Path) -> None:
    """DCD's released setting. The retrieval teacher is the caption teacher fine-tuned as a cross-encoder (a VL model
    trained on the same images and captions, as real teachers are pre-trained), ranking each caption against
    captions of other images that a dual-encoder retriever confuses (ALBEF's hard negatives). Every student is
    demo-distil (the teacher's width, half its depth) initialised from the teacher's layers (useSucc) and reads the
    teacher's features; the cross students draw their pools from the retriever's top candidates, the dual students
    from their own (re-ranked as they learn). A DCD student and its no-DCD twin run the same command but for the
    DCD loss term."""
    r, s = plan.root, plan.sizes
    regions = r / "regions-teacher.safetensors"
    retriever = r / "retriever"
    plan.add("dual-encoder retriever: mines the teacher's negatives and the cross students' pools", retriever,
             "finetune", "--task", "retrieval", "--arch", "dual", "--model", "demo-student", "--features", "student",
             "--regions", regions, *_layout(plan),
             *_train_args(plan, data, s.retriever_steps, plan.seed, retriever))  # fmt: skip
    plan.add("retrieval teacher: the caption teacher fine-tuned as a cross-encoder (each image ranks its caption "
             f"against {s.retrieval_negatives} others, mined by the retriever)", r / "teacher-itm", "finetune",
             "--task", "retrieval", "--model", r / "teacher", "--regions", regions, "--features", "teacher",
             "--itm-negatives", s.retrieval_negatives, "--itm-miner", retriever,
             *_train_args(plan, data, s.retrieval_teacher_steps, plan.seed, r / "teacher-itm",
                          batch_size=s.retrieval_teacher_batch))  # fmt: skip
    test = ["--annotations", data / "karpathy.json", "--split", "test", "--folds", s.folds, "--device", plan.device]
    plan.add("eval-retrieval teacher", r / "eval" / "teacher-itm", "eval-retrieval", "--model", r / "teacher-itm",
             "--regions", regions, *test, "--out", r / "eval" / "teacher-itm")  # fmt: skip
    for seed in plan.seeds:
        for name, (arch, dcd) in RETRIEVAL_STUDENTS.items():
            out = student_dir(r, name, seed)
            pools = (["--dcd-pool-source", retriever] if arch == "cross"
                     else ["--dcd-pool-source", "student", "--dcd-pool-refresh", s.pool_refresh])  # fmt: skip
            batch = s.cross_student_batch if arch == "cross" else s.dual_student_batch
            plan.add(f"{name} (seed {seed})", out, "distill", "--method", "dcd", "--task", "retrieval", "--teacher",
                     r / "teacher-itm", "--student", "demo-distil", "--arch", arch, "--init-from-teacher", "uniform",
                     "--student-features", "teacher", "--regions", regions, *(DCD_LOSSES if dcd else TASK_LOSS),
                     "--dcd-pool", s.dcd_pool, "--dcd-k", s.dcd_k,
                     *_train_args(plan, data, s.retrieval_student_steps, seed, out, batch), *pools)  # fmt: skip
        dcd = student_dir(r, "dual student DCD", seed)
        evaluations = [(student_dir(r, name, seed), []) for name in RETRIEVAL_STUDENTS]
        evaluations.append((dcd, ["--rerank-model", r / "teacher-itm", "--rerank-k", s.rerank_k]))
        for model, extra in evaluations:
            out = r / "eval" / (model.name + ("-two-stage" if extra else ""))
            plan.add(f"eval-retrieval {out.name}", out, "eval-retrieval", "--model", model, "--regions", regions,
                     *test, *extra, "--out", out)  # fmt: skip


def _vqa(plan: Plan, data: Path) -> None:
    r, s = plan.root, plan.sizes
    vqa = ["--task", "vqa", "--questions", data / "questions.json", "--split-file", data / "karpathy.json",
           "--min-answer-count", 1]  # fmt: skip

    def train(steps: int, seed: int, out: Path) -> list:
        args = _train_args(plan, data, steps, seed, out)
        args[args.index("--annotations") + 1] = data / "annotations.json"
        return [*vqa, *args]

    plan.add("VQA teacher", r / "teacher-vqa", "finetune", "--model", "demo-teacher", "--regions",
             r / "regions-teacher.safetensors", "--features", "teacher", *_layout(plan),
             *train(s.teacher_steps, plan.seed, r / "teacher-vqa"))  # fmt: skip
    plan.add("adapt the VQA teacher", r / "teacher-vqa-adapted", "adapt-teacher", "--teacher", r / "teacher-vqa",
             "--regions", r / "regions.safetensors", *train(s.adapt_steps, plan.seed, r / "teacher-vqa-adapted"))  # fmt: skip
    for seed in plan.seeds:
        plain, kd = student_dir(r, "vqa student no KD", seed), student_dir(r, "vqa student KD", seed)
        plan.add(f"VQA student no KD (seed {seed})", plain, "finetune", "--model", "demo-student", "--features",
                 "student", "--regions", r / "regions.safetensors", *_layout(plan),
                 *train(s.student_steps, seed, plain))  # fmt: skip
        plan.add(f"VQA student KD + adaptation (seed {seed})", kd, "distill", "--teacher", r / "teacher-vqa-adapted",
                 "--student", "demo-student", "--regions", r / "regions.safetensors",
                 *train(s.student_steps, seed, kd), *KD_LOSSES)  # fmt: skip
    test = ["--questions", data / "questions.json", "--annotations", data / "annotations.json", "--device",
            plan.device]
    models = [("teacher-vqa", "regions-teacher"), ("teacher-vqa-adapted", "regions")]
    models += [(student_dir(r, n, seed).name, "regions") for n in ("vqa student no KD", "vqa student KD")
               for seed in plan.seeds]  # fmt: skip
    for model, regions in models:
        directory = r / model if model.startswith("teacher") else r / "students" / model
        plan.add(f"eval-vqa {model}", r / "eval" / model, "eval-vqa", "--model", directory, "--regions",
                 r / f"{regions}.safetensors", *test, "--out", r / "eval" / model)  # fmt: skip


def _latency(plan: Plan, data: Path) -> None:
    r = plan.root
    student = student_dir(r, "student KD + adaptation", plan.seed)
    plan.add("benchmark-latency: caption teacher vs student", r / "latency", "benchmark-latency", "--model",
             r / "teacher", "--model", student, "--images", data / "images", "--detector", r / "detector",
             "--batch-sizes", "1", "--warmup", 2, "--iters", 10, "--decode-length", 20, "--device", plan.device,
             "--out", r / "latency")  # fmt: skip
    s = plan.sizes  # a student with and without DCD is one architecture: the DCD one is timed for both
    plan.add(f"benchmark-latency: rank a {s.gallery_images} x {s.gallery_texts} gallery (cross-encoders timed on "
             f"{s.latency_pairs:,} pairs and extrapolated; the dual student + faiss; two-stage)", r / "latency-retrieval",
             "benchmark-latency", "--task", "retrieval", "--model", r / "teacher-itm", "--model",
             student_dir(r, "cross student DCD", plan.seed), "--model", student_dir(r, "dual student DCD", plan.seed),
             "--images", data / "images", "--detector", r / "detector",
             "--gallery-images", s.gallery_images, "--gallery-texts", s.gallery_texts, "--max-pairs", s.latency_pairs,
             "--rerank-k", s.rerank_k, "--warmup", 1, "--iters", 1, "--device", plan.device, "--out", r / "latency-retrieval")  # fmt: skip
