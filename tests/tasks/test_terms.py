"""One source of truth for the loss terms: `tasks/terms.py` is what `--loss` accepts and what the task modules
compute; a term in the table that a module does not compute, or the reverse, fails here."""

from __future__ import annotations

import pytest
import torch

from tests.models import toy
from vlkd_cli.errors import UsageError
from vlkd_cli.losses import map_layers
from vlkd_cli.tasks.dcd import DCDBatch, DCDModule
from vlkd_cli.tasks.distillvlm import DistillBatch, DistillModule
from vlkd_cli.tasks.terms import METHODS, default_weights, describe_defaults, parse_loss_weights, terms


def test_the_table() -> None:
    assert METHODS == ("distillvlm", "dcd")
    assert terms("distillvlm") == ("task", "attention_mse", "token_nce", "logit_kd")
    assert default_weights("distillvlm") == {"task": 1.0, "attention_mse": 10.0, "token_nce": 0.5, "logit_kd": 1.0}
    assert default_weights("dcd") == {"dcd": 1.0, "task": 0.0}
    assert describe_defaults("distillvlm") == "task=1 attention_mse=10 token_nce=0.5 logit_kd=1"
    default_weights("dcd")["dcd"] = 5.0  # a copy: the table is not changed through it
    assert default_weights("dcd")["dcd"] == 1.0


def test_loss_flags_are_checked_against_the_table() -> None:
    assert parse_loss_weights(None, "dcd") == {"dcd": 1.0, "task": 0.0}
    assert parse_loss_weights(["task=1", "logit_kd=2"]) == {"task": 1.0, "attention_mse": 0.0, "token_nce": 0.0,
                                                            "logit_kd": 2.0}  # fmt: skip
    with pytest.raises(UsageError, match="NAME one of dcd, task for --method dcd"):
        parse_loss_weights(["attention_mse=1"], "dcd")
    with pytest.raises(UsageError, match="not a number"):
        parse_loss_weights(["task=x"])
    with pytest.raises(UsageError, match="--method must be distillvlm or dcd"):
        parse_loss_weights(None, "kd")


def _distill_parts(weights: dict[str, float]) -> dict[str, torch.Tensor]:
    student, teacher = toy.model("caption"), toy.model("caption")
    pairs = map_layers(student.vl.num_layers, teacher.vl.num_layers, "all")
    module = DistillModule(student.train(), teacher, weights=weights, layer_pairs=pairs, queue_size=8)
    vl = toy.batch(mask_type="seq2seq")
    return module(DistillBatch(vl, {}, vl))


def test_distillvlm_computes_every_term_of_the_table_and_only_those() -> None:
    parts = _distill_parts({name: 1.0 for name in terms("distillvlm")})
    assert set(parts) == {"loss"} | {f"{name}_loss" for name in terms("distillvlm")}
    assert all(torch.isfinite(v) for v in parts.values())
    expected = sum(parts[f"{name}_loss"] for name in terms("distillvlm"))
    assert torch.allclose(parts["loss"], expected)
    only_task = _distill_parts({"task": 1.0, "attention_mse": 0.0, "token_nce": 0.0, "logit_kd": 0.0})
    assert set(only_task) == {"loss", "task_loss"}


def test_dcd_computes_every_term_of_the_table() -> None:
    student, teacher = toy.model("retrieval"), toy.model("retrieval")
    module = DCDModule(student.train(), teacher, weights={name: 1.0 for name in terms("dcd")}, k=2)
    vl = toy.batch(toy.CAPTIONS[:4], num_regions=[2, 2, 3, 3])  # 2 items x a pool of 2 captions
    parts = module(DCDBatch(vl, {"image_ids": torch.tensor([0, 0, 1, 1])}, vl, vl, pool_size=2))
    assert {f"{name}_loss" for name in terms("dcd")} <= set(parts)
    assert torch.allclose(parts["loss"], parts["dcd_loss"] + parts["task_loss"])


def test_the_no_kd_control_does_not_run_the_teacher(monkeypatch) -> None:
    student, teacher = toy.model("caption"), toy.model("caption")
    pairs = map_layers(student.vl.num_layers, teacher.vl.num_layers, "all")
    weights = {"task": 1.0, "attention_mse": 0.0, "token_nce": 0.0, "logit_kd": 0.0}
    module = DistillModule(student.eval(), teacher, weights=weights, layer_pairs=pairs)  # eval: no dropout
    monkeypatch.setattr(teacher, "forward_loss", lambda *a, **k: pytest.fail("the teacher ran"))
    vl = toy.batch(mask_type="seq2seq")
    parts = module(DistillBatch(vl, {}, vl))
    assert torch.equal(parts["loss"], student.forward_loss(*student.prepare(vl, {}))["loss"])
