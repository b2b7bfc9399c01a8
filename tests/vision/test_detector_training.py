"""train_detector (overfit, determinism, errors), to_coco_results, evaluate_box_ap and letterboxing."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from pycocotools.coco import COCO

from vlkd_cli.errors import InputError, RunError
from vlkd_cli.vision.backbone import create_backbone
from vlkd_cli.vision.detector import Detector
from vlkd_cli.vision.detector_training import evaluate_box_ap, to_coco_results, train_detector, warmup_cosine
from vlkd_cli.vision.resize import resize_longest_side

from .scenes import make_scenes

SIZE = 64


def _detector(seed: int = 0, num_classes: int = 3) -> Detector:
    torch.manual_seed(seed)
    return Detector(create_backbone("resnet10t", seed=seed), num_classes, channels=32)


def _coco(images: list[int], boxes: dict[int, list[list[float]]]) -> COCO:
    """An in-memory COCO ground truth; boxes are xywh of category 1."""
    coco = COCO()
    anns = [
        {"id": i + 1, "image_id": image_id, "category_id": 1, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
        for i, (image_id, box) in enumerate((k, b) for k, v in boxes.items() for b in v)
    ]
    coco.dataset = {"images": [{"id": i} for i in images], "annotations": anns, "categories": [{"id": 1, "name": "x"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


@pytest.mark.slow
def test_loss_goes_down_when_overfitting_eight_images() -> None:
    samples = make_scenes(8, SIZE, seed=0, num_classes=3)
    result = train_detector(_detector(), samples, image_size=SIZE, max_steps=40, batch_size=8, lr=3e-3, seed=0)
    history = result["history"]
    assert result["steps"] == 40 and len(history) == 40 and result["epochs"] == 40
    first = sum(h["loss"] for h in history[:3]) / 3
    assert result["final_loss"] < 0.5 * first, (first, result["final_loss"])
    assert [h["lr"] for h in history[:2]] == pytest.approx([1.5e-3, 3e-3])  # 2 warm-up steps (5% of 40)
    assert history[-1]["lr"] < 1e-5  # cosine decay to 0


def test_same_seed_same_run_and_global_rng_untouched() -> None:
    samples = make_scenes(6, SIZE, seed=2, num_classes=3)
    runs = []
    for _ in range(2):
        torch.manual_seed(99)
        detector = _detector()
        history = train_detector(detector, samples, image_size=SIZE, max_steps=3, batch_size=4, seed=5)["history"]
        after = torch.rand(1)
        runs.append(([h["loss"] for h in history], detector.backbone.weights_sha256, after))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    torch.manual_seed(99)
    _detector()
    assert torch.equal(runs[0][2], torch.rand(1))  # training consumed nothing from the global RNG


def test_progress_and_epoch_count() -> None:
    samples = make_scenes(5, SIZE, seed=3, num_classes=3)
    calls = []

    def progress(step: int, total: int, logs: dict[str, float]) -> None:
        calls.append((step, total))

    result = train_detector(_detector(), samples, image_size=SIZE, epochs=2, batch_size=2, seed=0, progress=progress)
    assert result["steps"] == 6 and calls == [(s, 6) for s in range(1, 7)]  # ceil(5 / 2) = 3 steps per epoch


def test_smaller_images_are_padded() -> None:
    image, boxes, labels = make_scenes(1, 48, seed=4, num_classes=3)[0]
    result = train_detector(_detector(), [(image[:, :40], boxes.clamp(max=40), labels)], image_size=SIZE, max_steps=1)
    assert result["steps"] == 1


def test_bad_samples_are_refused() -> None:
    image, boxes, labels = make_scenes(1, SIZE, seed=5, num_classes=3)[0]
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
        train_detector(_detector(), [(image, boxes, labels + 3)], image_size=SIZE, max_steps=1)
    with pytest.raises(ValueError, match="larger than image_size"):
        train_detector(_detector(), [(image, boxes, labels)], image_size=32, max_steps=1)
    with pytest.raises(ValueError, match="uint8"):
        train_detector(_detector(), [(image.float(), boxes, labels)], image_size=SIZE, max_steps=1)


def test_non_finite_loss_is_a_run_error(monkeypatch: pytest.MonkeyPatch) -> None:
    detector = _detector()
    monkeypatch.setattr(detector, "loss", lambda outputs, targets: {"loss": outputs["heatmap"].sum() * float("nan")})
    with pytest.raises(RunError, match="non-finite"):
        train_detector(detector, make_scenes(2, SIZE, seed=6, num_classes=3), image_size=SIZE, max_steps=1)


def test_warmup_cosine_schedule() -> None:
    assert [warmup_cosine(s, 10, 2) for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert warmup_cosine(6, 10, 2) == pytest.approx(0.5)
    assert warmup_cosine(10, 10, 2) == pytest.approx(0.0)


def test_to_coco_results_undoes_the_letterbox_scale() -> None:
    detections = [
        {"boxes": torch.tensor([[10.0, 20.0, 30.0, 60.0]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}
    ]
    results = to_coco_results(detections, [42], [7, 9], scales=[0.5])
    expected = {"image_id": 42, "category_id": 9, "bbox": [20.0, 40.0, 40.0, 80.0], "score": pytest.approx(0.9)}
    assert results == [expected]


def test_evaluate_box_ap() -> None:
    gt = _coco([1, 2], {1: [[10, 10, 20, 20]], 2: [[0, 0, 30, 10]]})
    perfect = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 30, 10], "score": 0.8},
    ]
    assert evaluate_box_ap(perfect, gt) == pytest.approx({"AP": 1.0, "AP50": 1.0, "AP75": 1.0})
    shifted = [dict(r, bbox=[r["bbox"][0] + 0.2 * r["bbox"][2], *r["bbox"][1:]]) for r in perfect]  # IoU 0.8/1.2
    metrics = evaluate_box_ap(shifted, gt)
    assert metrics["AP50"] == pytest.approx(1.0) and metrics["AP75"] == 0.0 and 0 < metrics["AP"] < 1
    half = evaluate_box_ap(perfect[:1], gt)
    assert half["AP50"] == pytest.approx(0.5, abs=0.01)
    assert evaluate_box_ap(perfect[:1], gt, image_ids=[1])["AP50"] == pytest.approx(1.0)
    assert evaluate_box_ap([], gt) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with pytest.raises(InputError, match="missing from the ground truth"):
        evaluate_box_ap([dict(perfect[0], image_id=3)], gt)


def test_evaluate_box_ap_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    gt = _coco([1], {1: [[10, 10, 20, 20]]})
    evaluate_box_ap([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}], gt)
    assert capsys.readouterr().out == ""


def test_resize_longest_side() -> None:
    image = torch.full((3, 50, 100), 200, dtype=torch.uint8)
    out, scale = resize_longest_side(image, 64)
    assert out.shape == (3, 64, 64) and out.dtype == torch.uint8 and scale == 0.64
    assert (out[:, :32] == 200).all() and (out[:, 32:] == 0).all()  # 50 * 0.64 = 32 rows, then padding
    same, one = resize_longest_side(image[:, :, :50], 50)
    assert one == 1.0 and torch.equal(same, image[:, :, :50])
