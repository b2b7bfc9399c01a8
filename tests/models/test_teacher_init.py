"""A student initialised from its teacher's layers (DistilBERT; DCD's useSucc): the layer choice, what is copied
into cross and dual students, and the refusals."""

from __future__ import annotations

import pytest
import torch

from vlkd_cli.errors import InputError, UsageError
from vlkd_cli.models.teacher_init import check_width, init_from_teacher, parse_layers


@pytest.mark.parametrize(("spec", "teacher", "student", "expected"), [
    ("uniform", 12, 6, [0, 2, 4, 7, 9, 11]),  # DistilBERT's layers of BERT-base
    ("uniform", 6, 3, [0, 3, 5]),  # DCD's useSucc
    ("uniform", 4, None, [0, 3]),  # no student depth: half the teacher's
    ("uniform", 4, 1, [0]),
    ("0,3,5", 6, 3, [0, 3, 5]),
    ("1", 2, None, [1]),
])  # fmt: skip
def test_parse_layers(spec, teacher, student, expected) -> None:
    assert parse_layers(spec, teacher, student) == expected


@pytest.mark.parametrize(("spec", "student"), [("0,6", None), ("3,1", None), ("0,0", None), ("a,b", None),
                                               ("0,3", 3), ("uniform", 7)])  # fmt: skip
def test_bad_layer_lists_are_usage_errors(spec, student) -> None:
    with pytest.raises(UsageError) as info:
        parse_layers(spec, 6, student)
    assert info.value.exit_code == 2


def test_a_width_mismatch_is_exit_3() -> None:
    teacher = {"hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024}
    check_width(dict(teacher), teacher, "t")
    with pytest.raises(InputError, match="teacher's width") as info:
        check_width({**teacher, "hidden_size": 128}, teacher, "t")
    assert info.value.exit_code == 3


def _models(arch: str, depth: int, feature_dim: int = 8):
    from vlkd_cli.models.factory import create_vl_model
    from vlkd_cli.models.presets import get_preset
    from vlkd_cli.models.tokenizer import train_wordpiece_tokenizer

    tokenizer = train_wordpiece_tokenizer(["a red ball on a table", "two dogs in the grass"], vocab_size=64)
    common = {"task": "retrieval", "max_text_len": 8, "max_tag_len": 0, "max_regions": 3, "tokenizer": tokenizer}
    torch.manual_seed(0)
    teacher = create_vl_model(preset="demo-teacher", region_feature_dim=8, **common)
    student_encoder = {**teacher.config["encoder"], "num_hidden_layers": depth}
    assert get_preset("demo-distil")["hidden_size"] == student_encoder["hidden_size"]
    student = create_vl_model(encoder_config=student_encoder, arch=arch, region_feature_dim=feature_dim, **common)
    return teacher, student


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_a_cross_student_takes_the_chosen_layers_embeddings_and_head() -> None:
    teacher, student = _models("cross", depth=2)
    record = init_from_teacher(student, teacher, [0, 3])
    layers_t, layers_s = teacher.vl.encoder.encoder.layer, student.vl.encoder.encoder.layer
    assert _equal(layers_s[0], layers_t[0]) and _equal(layers_s[1], layers_t[3]) and not _equal(layers_s[1], layers_t[1])
    assert _equal(student.vl.encoder.embeddings, teacher.vl.encoder.embeddings)
    assert _equal(student.vl.region_embedding, teacher.vl.region_embedding)
    assert _equal(student.itm_head, teacher.itm_head)
    assert record["layers"] == [0, 3] and record["kept_initialisation"] == []


def test_a_projection_for_other_features_keeps_its_initialisation() -> None:
    teacher, student = _models("cross", depth=2, feature_dim=5)
    record = init_from_teacher(student, teacher, [0, 3])
    assert record["kept_initialisation"] == ["vl.region_embedding.projection.weight"]
    assert _equal(student.vl.region_embedding.layer_norm, teacher.vl.region_embedding.layer_norm)


def test_both_towers_of_a_dual_student_take_the_chosen_layers() -> None:
    teacher, student = _models("dual", depth=2)
    record = init_from_teacher(student, teacher, [1, 2])
    layers_t = teacher.vl.encoder.encoder.layer
    assert _equal(student.text_encoder.encoder.layer[0], layers_t[1])
    assert _equal(student.image_encoder.layer[1], layers_t[2])
    assert _equal(student.text_encoder.embeddings, teacher.vl.encoder.embeddings)
    assert _equal(student.region_embedding, teacher.vl.region_embedding)
    assert set(record["kept_initialisation"]) == {"image_token", "logit_scale", "image_projection.weight",
                                                   "text_projection.weight"}  # fmt: skip
