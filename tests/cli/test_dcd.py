"""`vlkd distill --method dcd`: hard-negative mining, the frozen teacher, both student architectures, exact
resume, and the errors for inputs DCD cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import invoke, train_tiny
from vlkd_cli.stages.dcd import dual_from_scratch_warning
from vlkd_cli.tasks.dcd import DCDModule, draw_negatives, hard_candidates


@pytest.fixture(scope="module")
def itm_teacher(demo_data, demo_regions, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dcd") / "teacher"
    return train_tiny(demo_data, demo_regions, out, "retrieval", "--features", "teacher", "--max-steps", 3)


def _dcd(demo_data, regions, teacher, out, *extra, arch="cross"):
    return invoke(["distill", "--method", "dcd", "--task", "retrieval", "--teacher", teacher, "--student", "tiny",
                   "--arch", arch, "--regions", regions, "--annotations", demo_data / "karpathy.json", "--split",
                   "train", "--batch-size", 4, "--device", "cpu", "--lr", 1e-3, "--out", out, *extra])  # fmt: skip


def test_hard_candidates_put_the_positive_first_then_the_hardest_negatives():
    teacher = torch.tensor([[0.0, 5.0, -1.0, 7.0, 2.0], [9.0, 1.0, 3.0, 3.0, -2.0]])  # (B=2, P=5), col 0 positive
    assert hard_candidates(teacher, 3).tolist() == [[0, 3, 1], [0, 2, 3]]  # ties → the lower column first
    assert hard_candidates(teacher, 5)[:, 0].tolist() == [0, 0]


def test_negatives_never_come_from_the_same_image():
    image_ids = np.array([7, 7, 7, 3, 7, 7, 9, 7])  # most captions belong to image 7
    np.random.seed(0)
    picks = np.concatenate([draw_negatives(image_ids, 7, 15) for _ in range(200)])
    assert set(image_ids[picks].tolist()) == {3, 9}
    assert set(picks.tolist()) == {3, 6}  # both other-image captions are drawn


def _tiny_pair(arch: str):
    from vlkd_cli.models.factory import create_vl_model
    from vlkd_cli.models.tokenizer import train_wordpiece_tokenizer

    tokenizer = train_wordpiece_tokenizer(["a red ball on a table", "two dogs in the grass"], vocab_size=64)
    common = {"task": "retrieval", "region_feature_dim": 8, "max_text_len": 8, "max_tag_len": 0, "max_regions": 3}
    torch.manual_seed(0)
    teacher = create_vl_model(preset="tiny", tokenizer=tokenizer, **common)
    student = create_vl_model(preset="tiny", tokenizer=tokenizer, arch=arch, **common)
    return tokenizer, teacher, student


def _pool_batch(tokenizer, model, b: int, pool: int):
    from vlkd_cli.structures.vl_batch import build_batch

    g = torch.Generator().manual_seed(1)
    texts = ["a red ball", "two dogs", "a table", "the grass on a ball", "red dogs"] * (b * pool)
    feats = [torch.randn(3, 8, generator=g) for _ in range(b)]
    boxes = [torch.tensor([[0, 0, 4, 4], [1, 1, 3, 3], [2, 0, 4, 2]], dtype=torch.float32)] * b
    rows = [n // pool for n in range(b * pool)]
    return build_batch(tokenizer, texts[: b * pool], None, [feats[r] for r in rows], [boxes[r] for r in rows],
                       [(4, 4)] * (b * pool), **model.batch_kwargs())  # fmt: skip


@pytest.mark.parametrize("arch", ["cross", "dual"])
def test_the_teacher_stays_bit_identical_and_out_of_the_optimizer(arch):
    from vlkd_cli.tasks.dcd import DCDBatch

    tokenizer, teacher, student = _tiny_pair(arch)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    module = DCDModule(student, teacher, weights={"dcd": 1.0}, k=3).train()
    assert not any(k.startswith("_teacher") or "teacher" in k for k in module.state_dict())
    pool_vl = _pool_batch(tokenizer, student, b=4, pool=5)
    batch = DCDBatch(pool_vl, {}, pool_vl, pool_vl, pool_size=5)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        parts = module(batch)
        parts["loss"].backward()
        optimizer.step()
        assert torch.isfinite(parts["loss"]) and set(parts) >= {"dcd_loss", "dcd_kd", "dcd_hard"}
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_student_scores_match_the_chosen_columns():
    """The student scores row b·P + cols[b, j] of the pool: check against scoring those pairs one by one."""
    tokenizer, teacher, student = _tiny_pair("cross")
    module = DCDModule(student.eval(), teacher, weights={"dcd": 1.0}, k=3)
    pool_vl = _pool_batch(tokenizer, student, b=2, pool=5)
    cols = torch.tensor([[0, 4, 2], [0, 1, 3]])
    scores = module.student_scores(pool_vl, cols, 5)
    from vlkd_cli.structures.vl_batch import select_rows

    for b in range(2):
        for j in range(3):
            single = student.itm_scores(select_rows(pool_vl, torch.tensor([b * 5 + int(cols[b, j])])))
            assert scores[b, j].item() == pytest.approx(single.item(), abs=1e-5)


@pytest.mark.parametrize("arch", ["cross", "dual"])
def test_dcd_end_to_end(demo_data, demo_regions, itm_teacher, tmp_path, arch):
    teacher_weights = (itm_teacher / "model.safetensors").read_bytes()
    out = tmp_path / "student"
    result = _dcd(demo_data, demo_regions, itm_teacher, out, "--max-steps", 3, "--val-split", "val",
                  "--eval-every", 3, arch=arch)  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["metric"] == "r_mean" and summary["arch"] == arch and summary["losses"] == {"dcd": 1.0}
    assert ("warning: a dual student trained with the DCD loss alone" in result.stderr) == (arch == "dual")
    config = json.loads((out / "config.json").read_text())
    assert config["arch"] == arch and config["features"] == "student" and config["task"] == "retrieval"
    assert config["distillation"]["method"] == "dcd" and config["distillation"]["k"] == 8
    assert (itm_teacher / "model.safetensors").read_bytes() == teacher_weights
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any("dcd_kd" in e and "dcd_hard" in e for e in log) and any("val/r_mean" in e for e in log)
    weights = load_file(out / "model.safetensors")
    assert not any("teacher" in k for k in weights)
    evaluated = invoke(["eval-retrieval", "--model", out, "--regions", demo_regions, "--annotations",
                        demo_data / "karpathy.json", "--split", "val", "--device", "cpu", "--out", tmp_path / "eval"])  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output


def test_the_collapse_warning_only_for_a_dual_preset_without_the_task_loss(tmp_path):
    assert dual_from_scratch_warning("dual", "demo-student", {"dcd": 1.0}) is not None
    assert dual_from_scratch_warning("dual", "demo-student", {"dcd": 1.0, "task": 1.0}) is None
    assert dual_from_scratch_warning("dual", str(tmp_path), {"dcd": 1.0}) is None  # a trained model directory
    assert dual_from_scratch_warning("cross", "demo-student", {"dcd": 1.0}) is None


@pytest.mark.parametrize("source", ["random", "student"])
def test_dcd_resume_is_exact(demo_data, demo_regions, itm_teacher, tmp_path, source):
    """The pools are drawn from numpy's global generator, which checkpoints restore, and the student's candidate
    table (re-ranked at steps 3 and 4 here) is a buffer the checkpoints keep: 2 + 2 steps == 4 steps."""
    pools = ["--dcd-pool-source", source, "--dcd-pool-refresh", 3, "--loss", "dcd=1", "--loss", "task=1"]
    full = _dcd(demo_data, demo_regions, itm_teacher, tmp_path / "full", "--max-steps", 4, "--save-every", 2, *pools,
                arch="dual")  # fmt: skip
    assert full.exit_code == 0, full.output
    first = _dcd(demo_data, demo_regions, itm_teacher, tmp_path / "part", "--max-steps", 4, "--save-every", 2, *pools,
                 arch="dual")  # fmt: skip
    assert first.exit_code == 0, first.output
    import shutil

    shutil.rmtree(tmp_path / "part" / "checkpoints" / "step-00000004")
    (tmp_path / "part" / "model.safetensors").unlink()
    resumed = _dcd(demo_data, demo_regions, itm_teacher, tmp_path / "part", "--max-steps", 4, "--save-every", 2,
                   "--resume", *pools, arch="dual")  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "part" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_dcd_released_mode_runs(demo_data, demo_regions, itm_teacher, tmp_path):
    result = _dcd(demo_data, demo_regions, itm_teacher, tmp_path / "s", "--max-steps", 1, "--dcd-released",
                  "--loss", "dcd=1", "--loss", "task=0.5")  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["distillation"]["reproduce_released"] is True
    assert config["distillation"]["losses"] == {"dcd": 1.0, "task": 0.5}


@pytest.mark.parametrize(("change", "code", "message"), [
    (["--task", "caption"], 2, "--method dcd distils --task retrieval"),
    (["--dcd-k", "20"], 2, "--dcd-k"),
    (["--loss", "attention_mse=1"], 2, "dcd, task"),
    ("caption-teacher", 3, "retrieval cross-encoder"),
])  # fmt: skip
def test_dcd_refuses(demo_data, demo_regions, itm_teacher, tmp_path, change, code, message):
    teacher = itm_teacher
    extra = []
    if change == "caption-teacher":
        teacher = tmp_path / "cap"
        trained = invoke(["finetune", "--task", "caption", "--model", "tiny", "--regions", demo_regions,
                          "--annotations", demo_data / "karpathy.json", "--max-steps", 1, "--batch-size", 4,
                          "--device", "cpu", "--out", teacher])  # fmt: skip
        assert trained.exit_code == 0, trained.output
    else:
        extra = change
    args = ["distill", "--method", "dcd", "--task", "retrieval", "--teacher", teacher, "--student", "tiny",
            "--regions", demo_regions, "--annotations", demo_data / "karpathy.json", "--max-steps", 1,
            "--device", "cpu", "--out", tmp_path / "out"]  # fmt: skip
    if extra[:1] == ["--task"]:
        args[args.index("--task") + 1] = extra[1]
        extra = []
    result = invoke([*args, *extra])
    assert result.exit_code == code, result.output
    assert message in result.stderr and not (tmp_path / "out").exists()


def _dcd_args(demo_data, regions, teacher, out, student, *extra):
    return ["distill", "--method", "dcd", "--task", "retrieval", "--teacher", teacher, "--student", student,
            "--regions", regions, "--annotations", demo_data / "karpathy.json", "--split", "train", "--batch-size", 4,
            "--max-steps", 1, "--device", "cpu", "--out", out, *extra]  # fmt: skip


@pytest.mark.parametrize("arch", ["cross", "dual"])
def test_a_student_from_the_teachers_layers(demo_data, demo_regions, itm_teacher, tmp_path, arch):
    """DCD's released setting (useSucc): the student starts from the teacher's layers; its config says which."""
    result = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "s", "tiny", "--arch", arch,
                              "--init-from-teacher", "uniform", "--loss", "dcd=1", "--loss", "task=1"))  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "s" / "config.json").read_text())["initialized_from_teacher"]
    assert record["layers"] == [0, 1] and record["teacher"] == str(itm_teacher) and record["copied"] > 0


def test_init_from_teacher_refuses_another_width_and_a_student_dir(demo_data, demo_regions, itm_teacher, tmp_path):
    from tests.conftest import assert_refused

    narrow = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "a", "demo-student",
                              "--init-from-teacher", "0,1"))  # fmt: skip
    assert_refused(narrow, 3, "teacher's width", "'hidden_size': 128")
    first = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "b", "tiny"))
    assert first.exit_code == 0, first.output
    again = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "c", tmp_path / "b",
                             "--init-from-teacher", "0,1"))  # fmt: skip
    assert_refused(again, 2, "--init-from-teacher", "preset")


def test_a_student_directory_brings_its_own_arch(demo_data, demo_regions, itm_teacher, tmp_path):
    """A trained dual student continues with DCD without repeating --arch dual; a contradicting --arch is exit 2."""
    from tests.conftest import assert_refused

    first = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "a", "tiny", "--arch", "dual",
                             "--loss", "task=1"))  # fmt: skip
    assert first.exit_code == 0, first.output
    again = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "b", tmp_path / "a", "--loss", "dcd=1",
                             "--loss", "task=1", "--dcd-pool-source", "student"))  # fmt: skip
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "b" / "config.json").read_text())["arch"] == "dual"
    contradicted = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "c", tmp_path / "a",
                                    "--arch", "cross"))  # fmt: skip
    assert_refused(contradicted, 2, "--arch cross", "a dual model")
    assert not (tmp_path / "c").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    unreadable = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "d", broken))
    assert_refused(unreadable, 3, "config.json", "invalid JSON")
    assert not (tmp_path / "d").exists()


def test_finetune_a_shallower_model_from_the_teachers_layers(demo_data, demo_regions, itm_teacher, tmp_path):
    result = invoke(["finetune", "--task", "retrieval", "--model", itm_teacher, "--init-from-teacher", "1",
                     "--features", "teacher", "--regions", demo_regions, "--annotations", demo_data / "karpathy.json",
                     "--split", "train", "--batch-size", 4, "--max-steps", 1, "--device", "cpu", "--out",
                     tmp_path / "one"])  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "one" / "config.json").read_text())
    assert config["encoder"]["num_hidden_layers"] == 1 and config["initialized_from_teacher"]["layers"] == [1]


def test_a_cross_encoder_with_negatives_mined_by_a_dual_encoder(demo_data, demo_regions, itm_teacher, tmp_path):
    """ALBEF's recipe: a dual encoder's similarities draw the cross-encoder's ranking negatives."""
    from tests.conftest import assert_refused

    miner = train_tiny(demo_data, demo_regions, tmp_path / "dual", "retrieval", "--arch", "dual")
    args = ["finetune", "--task", "retrieval", "--model", "tiny", "--features", "teacher", "--regions", demo_regions,
            "--annotations", demo_data / "karpathy.json", "--split", "train", "--batch-size", 6, "--max-steps", 2,
            "--device", "cpu", "--itm-miner", miner]  # fmt: skip
    result = invoke([*args, "--itm-negatives", 3, "--out", tmp_path / "cross"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "cross" / "config.json").read_text())["itm_miner"]["sha256"]
    assert_refused(invoke([*args, "--out", tmp_path / "binary"]), 2, "--itm-negatives")
    refused = invoke([*args[:-1], itm_teacher, "--itm-negatives", 3, "--out", tmp_path / "by-cross"])
    assert_refused(refused, 3, "dual-encoder")
    assert not (tmp_path / "binary").exists() and not (tmp_path / "by-cross").exists()


def test_pools_from_a_fixed_dual_retriever_and_the_refusals(demo_data, demo_regions, itm_teacher, tmp_path):
    from tests.conftest import assert_refused

    retriever = train_tiny(demo_data, demo_regions, tmp_path / "dual", "retrieval", "--arch", "dual")
    fixed = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "s", "tiny", "--dcd-pool-source",
                             retriever, "--dcd-pool", 4, "--dcd-k", 2))  # fmt: skip
    assert fixed.exit_code == 0, fixed.output
    record = json.loads((tmp_path / "s" / "config.json").read_text())["distillation"]["pool_source"]
    assert record["path"] == str(retriever) and record["sha256"]
    cross_student = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "a", "tiny",
                                     "--dcd-pool-source", "student"))  # fmt: skip
    assert_refused(cross_student, 2, "--arch dual")
    by_cross = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "b", "tiny", "--dcd-pool-source",
                                itm_teacher))  # fmt: skip
    assert_refused(by_cross, 3, "dual-encoder")
    unknown = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "c", "tiny", "--dcd-pool-source",
                               "hard"))  # fmt: skip
    assert_refused(unknown, 2, "random, student")
    assert not any((tmp_path / name).exists() for name in "abc")


def test_retriever_candidates_are_the_top_captions_of_other_images(demo_data, demo_regions, tmp_path):
    from vlkd_cli.artifacts.regions import Regions
    from vlkd_cli.data.vl_datasets import Sample
    from vlkd_cli.tasks.dcd_pools import image_rows, retriever_candidates
    from vlkd_cli.tasks.inference import load_inference_model

    model = train_tiny(demo_data, demo_regions, tmp_path / "dual", "retrieval", "--arch", "dual")
    loaded = load_inference_model(model, Regions(demo_regions), tasks=("retrieval",), device=torch.device("cpu"))
    captions = ["a red ball", "a blue cube", "two green balls", "a red cube", "a small ball", "a big cube"]
    train = [Sample(n // 2, 100 + n // 2, text) for n, text in enumerate(captions)]  # 3 images, 2 captions each
    table = retriever_candidates(loaded.model, loaded.collator, train, top=3)
    rows = image_rows(train)
    images, texts = loaded.model.encode_batch(loaded.collator([train[0], train[2], train[4]] * 2).vl)
    scores = (images[:3] @ loaded.model.encode_batch(loaded.collator(train).vl)[1].T).detach()  # (3, 6)
    for image_id, row in rows.items():
        own = [n for n, s in enumerate(train) if s.image_id == image_id]
        assert not set(table[row].tolist()) & set(own) and len(set(table[row].tolist())) == 3
        others = [n for n in range(6) if n not in own]
        best = sorted(others, key=lambda n: -float(scores[row, n]))[:3]
        assert set(table[row].tolist()) == set(best)
    del texts


def test_the_no_dcd_control_does_not_run_the_teacher():
    """`--loss task=1` is the control: the student's own objective only, so the teacher is never asked."""
    from vlkd_cli.tasks.dcd import DCDBatch

    tokenizer, teacher, student = _tiny_pair("dual")

    def refuse(*_):
        raise AssertionError("the teacher ran")

    teacher.itm_scores = refuse
    module = DCDModule(student, teacher, weights={"task": 1.0, "dcd": 0.0}, k=3).train()
    vl = _pool_batch(tokenizer, student, b=4, pool=1)
    out = module(DCDBatch(vl, {"image_ids": torch.arange(4)}, vl, vl, pool_size=1))
    assert set(out) == {"loss", "task_loss"} and out["loss"].requires_grad


def test_the_released_setting_student_reads_the_teachers_features(demo_data, demo_regions, itm_teacher, tmp_path):
    """--student-features teacher: the student sees the teacher's image features, so from the teacher's layers it
    takes everything but the ITM head's fit (here: all of it); evaluation reads the same side."""
    from tests.conftest import assert_refused

    out = tmp_path / "s"
    result = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, out, "tiny", "--init-from-teacher", "0,1",
                              "--student-features", "teacher", "--loss", "dcd=1", "--loss", "task=1"))  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["features"] == "teacher" and config["initialized_from_teacher"]["kept_initialisation"] == []
    evaluated = invoke(["eval-retrieval", "--model", out, "--regions", demo_regions, "--annotations",
                        demo_data / "karpathy.json", "--split", "val", "--device", "cpu", "--out", tmp_path / "e"])  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    distillvlm = invoke(["distill", "--task", "caption", "--teacher", itm_teacher, "--student", "tiny",
                         "--student-features", "teacher", "--regions", demo_regions, "--annotations",
                         demo_data / "karpathy.json", "--device", "cpu", "--out", tmp_path / "c"])  # fmt: skip
    assert_refused(distillvlm, 2, "--student-features teacher")



@pytest.fixture(scope="module")
def own_regions(demo_data, demo_proposals, tmp_path_factory):
    """Regions of the training images only (other images, another order than demo_regions) and a dual encoder
    trained on them: a retriever with regions of its own."""
    from tests.conftest import TINY_BACKBONE, TINY_TEACHER_BACKBONE

    out = tmp_path_factory.mktemp("own")
    regions = out / "train-regions.safetensors"
    result = invoke(["extract-regions", "--images", demo_data / "images", "--annotations", demo_data / "karpathy.json",
                     "--split", "train", "--proposals", demo_proposals, "--student-backbone", TINY_BACKBONE,
                     "--teacher-backbone", TINY_TEACHER_BACKBONE, "--image-size", 64, "--device", "cpu", "--out",
                     regions])  # fmt: skip
    assert result.exit_code == 0, result.output
    return regions, train_tiny(demo_data, regions, out / "dual", "retrieval", "--arch", "dual")


def _samples_by_id(demo_regions, regions):
    """The same five training captions indexed in demo_regions and in `regions` (the orders differ)."""
    from vlkd_cli.artifacts.regions import Regions
    from vlkd_cli.data.vl_datasets import Sample

    theirs, mine = Regions(demo_regions), Regions(regions)
    ids = [int(i) for i in mine.image_ids][:5]
    assert [theirs.index_of(i) for i in ids] != [mine.index_of(i) for i in ids]  # the lookup is exercised
    return ([Sample(theirs.index_of(i), i, f"caption {i}") for i in ids],
            [Sample(mine.index_of(i), i, f"caption {i}") for i in ids], mine)  # fmt: skip


def test_a_miner_reads_its_own_regions_by_image_id(demo_data, demo_regions, own_regions, tmp_path):
    """A teacher on one regions artifact, mined by a dual encoder trained on another: --itm-miner-regions looks
    each sample up there by image id."""
    import torch

    from tests.conftest import assert_refused
    from vlkd_cli.tasks.negative_miner import NegativeMiner

    regions, miner = own_regions
    as_given, as_its_own, mine = _samples_by_id(demo_regions, regions)
    cpu = torch.device("cpu")
    expected = NegativeMiner(miner, mine, cpu).weights(as_its_own)
    assert torch.equal(NegativeMiner(miner, mine, cpu, own_regions=True).weights(as_given), expected)

    args = ["finetune", "--task", "retrieval", "--model", "tiny", "--features", "teacher", "--regions", demo_regions,
            "--annotations", demo_data / "karpathy.json", "--split", "train", "--batch-size", 6, "--max-steps", 1,
            "--device", "cpu", "--itm-negatives", 3, "--itm-miner-regions", regions]  # fmt: skip
    result = invoke([*args, "--itm-miner", miner, "--out", tmp_path / "cross"])
    assert result.exit_code == 0, result.output
    assert_refused(invoke([*args, "--out", tmp_path / "no-miner"]), 2, "--itm-miner")


def test_a_pool_retriever_reads_its_own_regions_by_image_id(demo_data, demo_regions, own_regions, itm_teacher,
                                                            tmp_path):  # fmt: skip
    from tests.conftest import assert_refused
    from vlkd_cli.tasks.dcd_pools import retriever_candidates
    from vlkd_cli.tasks.inference import load_inference_model

    regions, retriever = own_regions
    as_given, as_its_own, mine = _samples_by_id(demo_regions, regions)
    loaded = load_inference_model(retriever, mine, tasks=("retrieval",), device=torch.device("cpu"))
    expected = retriever_candidates(loaded.model, loaded.collator, as_its_own, 3)
    assert torch.equal(retriever_candidates(loaded.model, loaded.collator, as_given, 3, regions=mine), expected)

    pools = ["--dcd-pool-regions", regions, "--dcd-pool", 4, "--dcd-k", 2]
    fixed = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "s", "tiny", "--dcd-pool-source",
                             retriever, *pools))  # fmt: skip
    assert fixed.exit_code == 0, fixed.output
    released = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "r", "tiny", *pools))
    assert_refused(released, 2, "--dcd-pool-source")

    from tests.reliability.test_corrupt_artifacts import _regions_with

    image = int(mine.image_ids[-1])  # a training image the retriever ranks before the first step
    nan = _regions_with(regions, tmp_path / "nan.safetensors", "student_features", image, np.nan)
    refused = invoke(_dcd_args(demo_data, demo_regions, itm_teacher, tmp_path / "n", "tiny", "--dcd-pool-source",
                               retriever, "--dcd-pool-regions", nan, "--dcd-pool", 4, "--dcd-k", 2))  # fmt: skip
    assert_refused(refused, 3, str(nan), f"non-finite values in student_features of image {image}")
    assert not (tmp_path / "n").exists()
