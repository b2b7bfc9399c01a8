"""`models.precision`: int8 (dynamic quantisation) and bf16 (autocast) outputs close to fp32 on a tiny model; the
value and device checks."""

from __future__ import annotations

import pytest
import torch

from tests.models import toy
from vlkd_cli.errors import UsageError
from vlkd_cli.models.precision import PRECISIONS, check_precision, precision_context, to_precision

CPU = torch.device("cpu")


def _outputs(model, precision: str) -> dict[str, torch.Tensor]:
    batch = toy.batch()
    with torch.inference_mode(), precision_context(precision, CPU):
        return {"vqa": model.vqa_logits(batch).float()}


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_outputs_close_to_fp32(precision):
    model = toy.model("vqa")
    reference = _outputs(model, "fp32")["vqa"]
    converted = to_precision(model, precision, CPU)
    found = _outputs(converted, precision)["vqa"]
    assert found.shape == reference.shape and torch.isfinite(found).all()
    scale = reference.abs().max()
    assert (found - reference).abs().max() <= 0.05 * scale + 1e-3, (found - reference).abs().max()
    assert (found.argmax(dim=1) == reference.argmax(dim=1)).float().mean() >= 2 / 3


def test_int8_quantises_the_linear_layers_of_a_copy():
    model = toy.model("caption")
    quantized = to_precision(model, "int8", CPU)
    assert quantized is not model and not quantized.training
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in quantized.modules())
    assert not any(type(m) is torch.nn.Linear for m in quantized.modules())
    assert any(isinstance(m, torch.nn.Linear) for m in model.modules())  # the fp32 model is left as it was
    assert to_precision(model, "fp32", CPU) is model and to_precision(model, "bf16", CPU) is model
    batch = toy.batch(mask_type="seq2seq")
    with torch.inference_mode():
        fp32 = model.generate(batch, max_length=4, min_length=4).token_ids
        int8 = quantized.generate(batch, max_length=4, min_length=4).token_ids
    assert [len(ids) for ids in fp32] == [len(ids) for ids in int8] == [4] * len(fp32)


def test_check_precision():
    for precision in PRECISIONS:
        check_precision(precision, CPU)
    with pytest.raises(UsageError, match="fp32, bf16, int8"):
        check_precision("fp16")
    with pytest.raises(UsageError, match="CPU only"):
        check_precision("int8", torch.device("cuda"))
    check_precision("bf16", torch.device("cuda"))  # only checked, not run


def test_int8_decodes_with_an_int8_copy_of_the_tied_table():
    """The caption model's tied LM decoder (the word-embedding table, not an nn.Linear) is quantised in the int8
    copy only; its logits stay close to fp32 and the fp32 model keeps decoding with its float table."""
    model = toy.model("caption")
    quantized = to_precision(model, "int8", CPU)
    assert isinstance(quantized.lm_head.quantized_decoder, torch.ao.nn.quantized.dynamic.Linear)
    assert model.lm_head.quantized_decoder is None and "quantized_decoder" not in str(model.state_dict().keys())
    hidden = torch.randn(5, model.vl.word_embeddings.weight.shape[1])
    with torch.inference_mode():
        reference = model.lm_head(hidden, model.vl.word_embeddings.weight)  # (5, V)
        found = quantized.lm_head(hidden, quantized.vl.word_embeddings.weight)
    assert found.shape == reference.shape
    assert (found - reference).abs().max() <= 0.05 * reference.abs().max(), (found - reference).abs().max()
    assert not torch.equal(found, reference)  # the int8 table, not the float one
