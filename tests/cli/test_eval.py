"""`eval-caption`, `eval-vqa` and `eval-retrieval` end to end: from results files, from score matrices and from
tiny trained models; outputs, lineage, and the errors for wrong inputs."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from tests.conftest import invoke
from vlkd_cli.artifacts.header import read_header
from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.karpathy import load_karpathy
from vlkd_cli.data.vqa import load_vqa_annotations
from vlkd_cli.tasks.inference import load_inference_model
from vlkd_cli.tasks.ranking import dual_embeddings, load_gallery


@pytest.fixture
def models(task_models) -> dict[str, Path]:
    return task_models  # one set of tiny models for every evaluation test (tests/conftest.py)


def _test_images(demo_data) -> dict[int, list[str]]:
    return {image.image_id: image.sentences for image in load_karpathy(demo_data / "karpathy.json", "test")}


def _results(path: Path, captions: dict[int, str]) -> Path:
    path.write_text(json.dumps([{"image_id": i, "caption": c, "id": n} for n, (i, c) in enumerate(captions.items())]))
    return path


# --------------------------------------------------------------------------------------------- eval-caption


def test_eval_caption_from_results_file(demo_data, tmp_path):
    from vlkd_cli.eval import caption_scores

    refs = _test_images(demo_data)
    hyps = {i: caps[0].upper() + " !!" for i, caps in refs.items()}  # scored against the (tokenized) references
    out = tmp_path / "eval"
    result = invoke(["eval-caption", "--predictions", _results(tmp_path / "res.json", hyps), "--annotations",
                     demo_data / "karpathy.json", "--no-meteor", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE"]
    assert metrics["METEOR"] is None and metrics["SPICE"] is None and "SPICE is null" in result.output
    expected = caption_scores(refs, hyps, meteor=False).metrics
    assert metrics == pytest.approx({k: v for k, v in expected.items()}, abs=0)
    assert 0 < metrics["Bleu_1"] <= 1 and metrics["CIDEr"] > 0
    assert json.loads((out / "predictions.json").read_text()) == [
        {"image_id": i, "caption": hyps[i]} for i in sorted(hyps)
    ]
    scores = load_file(out / "scores.safetensors")
    assert sorted(scores["image_ids"].tolist()) == sorted(refs) and scores["CIDEr"].shape == (len(refs),)
    assert np.mean(scores["CIDEr"]) == pytest.approx(metrics["CIDEr"], abs=1e-12)
    header = read_header(out / "scores.safetensors")
    assert header.get("vlkd.kind") == "eval" and "predictions" in header.get("vlkd.inputs")


@pytest.mark.skipif(shutil.which("java") is None, reason="the official scorers need Java")
def test_eval_caption_backends_agree(demo_data, tmp_path):
    pytest.importorskip("pycocoevalcap")
    refs = _test_images(demo_data)
    hyps = {i: f"a (small) photo of {caps[-1].lower()}, isn't it?" for i, caps in refs.items()}
    res = _results(tmp_path / "res.json", hyps)
    metrics = {}
    for backend in ("python", "pycocoevalcap"):
        out = tmp_path / backend
        result = invoke(["eval-caption", "--predictions", res, "--annotations", demo_data / "karpathy.json",
                         "--backend", backend, "--no-meteor", "--out", out])  # fmt: skip
        assert result.exit_code == 0, result.output
        metrics[backend] = json.loads((out / "metrics.json").read_text())
    for key in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"):
        assert metrics["python"][key] == pytest.approx(metrics["pycocoevalcap"][key], abs=1e-9), key


def test_eval_caption_minimal_coco_ground_truth(tmp_path):
    """A COCO captions file whose images hold only ids is enough; only images with results are scored."""
    gt = {"images": [{"id": 1}, {"id": 2}, {"id": 3}],
          "annotations": [{"id": n, "image_id": i, "caption": c} for n, (i, c) in enumerate(
              [(1, "a red ball"), (1, "a ball that is red"), (2, "two dogs"), (2, "a pair of dogs"), (3, "a cat")])]}  # fmt: skip
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    res = _results(tmp_path / "res.json", {1: "a red ball", 2: "two cats"})
    result = invoke(["eval-caption", "--predictions", res, "--annotations", tmp_path / "gt.json", "--no-meteor",
                     "--out", tmp_path / "eval"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_file(tmp_path / "eval" / "scores.safetensors")["image_ids"].tolist() == [1, 2]


@pytest.mark.parametrize(("records", "message"), [
    ([{"image_id": 999999, "caption": "x"}], "not in the ground truth"),
    ("duplicate", "more than one caption"),
    ("missing", "have no result"),
    ([{"image_id": "1", "caption": "x"}], "image_id must be an integer"),
    ({"image_id": 1}, "non-empty JSON list"),
])  # fmt: skip
def test_eval_caption_refuses_bad_results(demo_data, tmp_path, records, message):
    refs = _test_images(demo_data)
    first = min(refs)
    if records == "duplicate":
        records = [{"image_id": i, "caption": "a"} for i in refs] + [{"image_id": first, "caption": "b"}]
    elif records == "missing":
        records = [{"image_id": first, "caption": "a"}]
    elif isinstance(records, list) and records[0]["image_id"] == 999999:
        records = [{"image_id": i, "caption": "a"} for i in refs] + records
    (tmp_path / "res.json").write_text(json.dumps(records))
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text('{"old": 1}')
    result = invoke(["eval-caption", "--predictions", tmp_path / "res.json", "--annotations",
                     demo_data / "karpathy.json", "--no-meteor", "--out", out])  # fmt: skip
    assert result.exit_code == 3, result.output
    assert message in result.stderr and "res.json" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (out / "metrics.json").read_text() == '{"old": 1}'  # the earlier evaluation is intact


def test_eval_refuses_an_out_dir_with_other_files(demo_data, tmp_path):
    refs = _test_images(demo_data)
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke(["eval-caption", "--predictions", _results(tmp_path / "res.json", {i: "a" for i in refs}),
                     "--annotations", demo_data / "karpathy.json", "--no-meteor", "--out", tmp_path])  # fmt: skip
    assert result.exit_code == 2 and "notes.txt" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_eval_caption_from_model(models, demo_data, demo_regions, tmp_path):
    out = tmp_path / "eval"
    result = invoke(["eval-caption", "--model", models["caption"], "--regions", demo_regions, "--annotations",
                     demo_data / "karpathy.json", "--split", "test", "--beam-size", 2, "--max-length", 6,
                     "--no-meteor", "--device", "cpu", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    predictions = json.loads((out / "predictions.json").read_text())
    assert [p["image_id"] for p in predictions] == sorted(_test_images(demo_data))
    assert all(isinstance(p["caption"], str) for p in predictions)
    inputs = json.loads(read_header(out / "scores.safetensors").get("vlkd.inputs"))
    assert [r["kind"] for r in inputs] == ["model", "regions", "annotations"]


def test_eval_caption_without_references_writes_results_only(models, demo_regions, tmp_path):
    out = tmp_path / "eval"
    result = invoke(["eval-caption", "--model", models["caption"], "--regions", demo_regions, "--max-length", 4,
                     "--device", "cpu", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json"]
    assert len(json.loads((out / "predictions.json").read_text())) == Regions(demo_regions).num_images


def test_eval_caption_refuses_a_model_of_another_task(models, demo_data, demo_regions, tmp_path):
    result = invoke(["eval-caption", "--model", models["vqa"], "--regions", demo_regions, "--annotations",
                     demo_data / "karpathy.json", "--device", "cpu", "--out", tmp_path / "e"])  # fmt: skip
    assert result.exit_code == 3 and "a vqa model" in result.stderr


# ------------------------------------------------------------------------------------------------- eval-vqa


def _vqa_files(demo_data):
    questions = json.loads((demo_data / "questions.json").read_text())["questions"]
    annotations = json.loads((demo_data / "annotations.json").read_text())["annotations"]
    return questions, annotations


def test_eval_vqa_from_results_file(demo_data, tmp_path):
    from vlkd_cli.eval.vqa import vqa_accuracy

    questions, annotations = _vqa_files(demo_data)
    answers = {a["question_id"]: a["answers"][n % 10]["answer"] for n, a in enumerate(annotations)}
    res = tmp_path / "res.json"
    res.write_text(json.dumps([{"question_id": q, "answer": a} for q, a in answers.items()]))
    for version in ("2021", "2016"):
        out = tmp_path / version
        result = invoke(["eval-vqa", "--predictions", res, "--questions", demo_data / "questions.json",
                         "--annotations", demo_data / "annotations.json", "--official-version", version, "--out", out])  # fmt: skip
        assert result.exit_code == 0, result.output
        metrics = json.loads((out / "metrics.json").read_text())
        assert set(metrics) == {"overall", "perQuestionType", "perAnswerType"}
        assert 0 < metrics["overall"] <= 100 and set(metrics["perAnswerType"]) <= {"yes/no", "number", "other"}
        anns = [asdict(a) for a in load_vqa_annotations(demo_data / "annotations.json").values()]
        assert metrics["overall"] == vqa_accuracy(answers, anns, version)["overall"]
        scores = load_file(out / "scores.safetensors")
        assert len(scores["question_ids"]) == len(questions)


def test_eval_vqa_refuses_missing_and_extra_ids(demo_data, tmp_path):
    questions, _ = _vqa_files(demo_data)
    records = [{"question_id": q["question_id"], "answer": "yes"} for q in questions[1:]]
    records.append({"question_id": 123456789, "answer": "no"})
    (tmp_path / "res.json").write_text(json.dumps(records))
    result = invoke(["eval-vqa", "--predictions", tmp_path / "res.json", "--questions", demo_data / "questions.json",
                     "--annotations", demo_data / "annotations.json", "--out", tmp_path / "e"])  # fmt: skip
    assert result.exit_code == 3, result.output
    assert str(questions[0]["question_id"]) in result.stderr and "123456789" in result.stderr
    assert not (tmp_path / "e").exists()


def test_eval_vqa_from_model_with_and_without_annotations(models, demo_data, demo_regions, tmp_path):
    questions, _ = _vqa_files(demo_data)
    base = ["eval-vqa", "--model", models["vqa"], "--regions", demo_regions, "--questions",
            demo_data / "questions.json", "--device", "cpu"]  # fmt: skip
    result = invoke([*base, "--out", tmp_path / "server"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "server").iterdir()) == ["predictions.json"]
    predictions = json.loads((tmp_path / "server" / "predictions.json").read_text())
    assert [p["question_id"] for p in predictions] == sorted(q["question_id"] for q in questions)
    answers = json.loads((models["vqa"] / "config.json").read_text())["answers"]
    assert {p["answer"] for p in predictions} <= set(answers)
    result = invoke([*base, "--annotations", demo_data / "annotations.json", "--out", tmp_path / "scored"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "scored" / "predictions.json").read_text()) == predictions


# ------------------------------------------------------------------------------------------- eval-retrieval


def _brute_force_recall(scores, image_ids, text_image_ids):
    """R@K both ways by plain loops (rank = strictly higher scores)."""
    rows = {int(i): r for r, i in enumerate(image_ids)}
    i2t, t2i = [], []
    for r in range(scores.shape[0]):
        mine = [c for c in range(scores.shape[1]) if rows[int(text_image_ids[c])] == r]
        best = max(scores[r, c] for c in mine)
        i2t.append(sum(1 for c in range(scores.shape[1]) if scores[r, c] > best))
    for c in range(scores.shape[1]):
        gt = scores[rows[int(text_image_ids[c])], c]
        t2i.append(sum(1 for r in range(scores.shape[0]) if scores[r, c] > gt))
    return {f"{d}_r{k}": 100.0 * sum(rank < k for rank in ranks) / len(ranks)
            for d, ranks in (("i2t", i2t), ("t2i", t2i)) for k in (1, 5, 10)}  # fmt: skip


def _score_file(path: Path, num_images=20, seed=0, captions=(1, 2, 3, 5, 7)) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    image_ids = rng.choice(10_000, size=num_images, replace=False).astype(np.int64)
    text_image_ids = np.concatenate([[i] * captions[n % len(captions)] for n, i in enumerate(image_ids)]).astype(
        np.int64
    )
    scores = rng.normal(size=(num_images, len(text_image_ids))).astype(np.float32)
    for c, i in enumerate(text_image_ids):
        scores[list(image_ids).index(i), c] += 1.5  # ground truth scores higher on average
    save_file({"scores": scores, "image_ids": image_ids, "text_image_ids": text_image_ids}, str(path))
    return scores, image_ids, text_image_ids


def test_eval_retrieval_from_any_tools_scores(tmp_path):
    scores, image_ids, text_image_ids = _score_file(tmp_path / "s.safetensors")
    out = tmp_path / "eval"
    result = invoke(["eval-retrieval", "--scores", tmp_path / "s.safetensors", "--out", out])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    expected = _brute_force_recall(scores, image_ids, text_image_ids)
    for key, value in expected.items():
        assert metrics[key] == value, key
    assert metrics["rsum"] == pytest.approx(sum(expected.values()))
    assert metrics["r_mean"] == pytest.approx(sum(expected.values()) / 6)
    predictions = json.loads((out / "predictions.json").read_text())
    assert len(predictions["i2t"]) == len(image_ids) and len(predictions["t2i"]) == len(text_image_ids)
    # The output holds the same layout: it can be scored again.
    again = invoke(["eval-retrieval", "--scores", out / "scores.safetensors", "--out", tmp_path / "again"])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "again" / "metrics.json").read_text()) == metrics


def test_eval_retrieval_folds(tmp_path):
    scores, image_ids, text_image_ids = _score_file(tmp_path / "s.safetensors", num_images=20)
    result = invoke(["eval-retrieval", "--scores", tmp_path / "s.safetensors", "--folds", 5, "--out", tmp_path / "e"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    per_fold = []
    for f in range(5):
        rows = np.arange(f * 4, f * 4 + 4)
        cols = np.isin(text_image_ids, image_ids[rows])
        per_fold.append(_brute_force_recall(scores[np.ix_(rows, cols)], image_ids[rows], text_image_ids[cols]))
    for key in per_fold[0]:
        assert metrics[key] == pytest.approx(np.mean([m[key] for m in per_fold]), abs=1e-12), key
    bad = invoke(["eval-retrieval", "--scores", tmp_path / "s.safetensors", "--folds", 3, "--out", tmp_path / "b"])
    assert bad.exit_code == 3 and "equal folds" in bad.stderr


@pytest.mark.parametrize("fault", ["regions-artifact", "shape", "nan", "unknown-text-image"])
def test_eval_retrieval_refuses_bad_score_files(demo_regions, tmp_path, fault):
    path = tmp_path / "s.safetensors"
    if fault == "regions-artifact":
        path = demo_regions
    else:
        scores, image_ids, text_image_ids = _score_file(path)
        if fault == "shape":
            scores = scores[:, :-1]
        elif fault == "nan":
            scores[0, 0] = np.nan
        else:
            text_image_ids[0] = -5
        save_file({"scores": scores, "image_ids": image_ids, "text_image_ids": text_image_ids}, str(path))
    result = invoke(["eval-retrieval", "--scores", path, "--out", tmp_path / "e"])
    assert result.exit_code == 3, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and path.name in result.stderr


def test_eval_retrieval_cross_encoder(models, demo_data, demo_regions, tmp_path):
    out = tmp_path / "eval"
    result = invoke(["eval-retrieval", "--model", models["cross"], "--regions", demo_regions, "--annotations",
                     demo_data / "karpathy.json", "--split", "train", "--device", "cpu", "--out", out])  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = load_file(out / "scores.safetensors")
    num_images = len(load_karpathy(demo_data / "karpathy.json", "train"))
    assert stored["scores"].shape == (num_images, 5 * num_images)
    metrics = json.loads((out / "metrics.json").read_text())
    expected = _brute_force_recall(stored["scores"], stored["image_ids"], stored["text_image_ids"])
    assert {k: metrics[k] for k in expected} == expected
    # With folds only the pairs within each fold are scored; the recall is that of the full matrix's fold blocks.
    folds = len(stored["image_ids"]) // 4 if len(stored["image_ids"]) % 4 == 0 else 1
    by_folds = invoke(["eval-retrieval", "--model", models["cross"], "--regions", demo_regions, "--annotations",
                       demo_data / "karpathy.json", "--split", "train", "--folds", folds, "--device", "cpu", "--out",
                       tmp_path / "folds"])  # fmt: skip
    assert by_folds.exit_code == 0, by_folds.output
    from_matrix = invoke(["eval-retrieval", "--scores", out / "scores.safetensors", "--folds", folds, "--out",
                          tmp_path / "matrix-folds"])  # fmt: skip
    assert from_matrix.exit_code == 0, from_matrix.output
    fold_metrics = json.loads((tmp_path / "folds" / "metrics.json").read_text())
    matrix_metrics = json.loads((tmp_path / "matrix-folds" / "metrics.json").read_text())
    assert fold_metrics == pytest.approx(matrix_metrics, abs=1e-9) and folds > 1


def test_eval_retrieval_dual_encoder_flat_equals_its_full_matrix(models, demo_data, demo_regions, tmp_path):
    base = ["eval-retrieval", "--model", models["dual"], "--regions", demo_regions, "--annotations",
            demo_data / "karpathy.json", "--split", "train", "--device", "cpu"]  # fmt: skip
    result = invoke([*base, "--out", tmp_path / "flat"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "flat" / "metrics.json").read_text())
    stored = load_file(tmp_path / "flat" / "scores.safetensors")
    assert stored["i2t_indices"].shape[1] == 10 and stored["t2i_indices"].shape[1] == 10
    # The full cosine matrix, from the model directly, gives the same recall.
    regions = Regions(demo_regions)
    loaded = load_inference_model(models["dual"], regions, tasks=("retrieval",), device=torch.device("cpu"))
    gallery = load_gallery(demo_data / "karpathy.json", "train", regions)
    image_emb, text_emb = dual_embeddings(loaded, gallery, 8)
    expected = _brute_force_recall(image_emb @ text_emb.T, gallery.image_ids, gallery.text_image_ids)
    assert {k: metrics[k] for k in expected} == expected
    # Five folds of four images; two-stage re-ranking by the cross-encoder.
    folds = invoke([*base, "--folds", 5, "--out", tmp_path / "folds"])
    assert folds.exit_code == 0, folds.output
    two_stage = invoke([*base, "--rerank-model", models["cross"], "--rerank-k", 12, "--out", tmp_path / "two"])
    assert two_stage.exit_code == 0, two_stage.output
    reranked = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert set(expected) <= set(reranked)


def test_eval_retrieval_rerank_needs_a_dual_first_stage(models, demo_data, demo_regions, tmp_path):
    result = invoke(["eval-retrieval", "--model", models["cross"], "--regions", demo_regions, "--annotations",
                     demo_data / "karpathy.json", "--rerank-model", models["cross"], "--device", "cpu",
                     "--out", tmp_path / "e"])  # fmt: skip
    assert result.exit_code == 2 and "dual encoder" in result.stderr
