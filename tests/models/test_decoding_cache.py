"""Cached (incremental) caption decoding gives the tokens and scores of full recomputation.

Two tiny shapes stand for the teacher (3 layers, width 96, 3 heads) and the student (the `tiny` preset: 2 layers,
width 64, 2 heads). Their weights are redrawn with a large spread so the captions differ from row to row and step
to step (BERT's 0.02 init gives every row the same caption), and a [SEP] bias makes rows end at different steps, so
the searches really drop finished rows and reorder beams while the cache follows them.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

from vlkd_cli.models import beam_search, greedy_search
from vlkd_cli.models.kv_cache import KVCache
from vlkd_cli.models.task_models import CachedCaptionStep

from . import toy

TEACHER = {"num_hidden_layers": 3, "hidden_size": 96, "num_attention_heads": 3, "intermediate_size": 192}
SEP_BIAS = {"student": 3.0, "teacher": 1.0}  # rows then end after 0 .. 8 tokens (checked below)
MAX_LENGTH = 8
TAGS = [["cube"], ["table", "sphere"], [], ["traffic light"]]


def caption_model(shape: str):
    """A tiny caption model of the teacher's or the student's shape with sharp random weights, in eval mode."""
    model = toy.model("caption", **({"encoder_overrides": TEACHER} if shape == "teacher" else {}))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim >= 2:
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
        model.lm_head.bias[model.special_token_ids["sep"]] = SEP_BIAS[shape]
    return model


def images(num_regions: list[int] | None = None):
    """4 rows: 3, 6 (> max_regions), 0 and 2 regions, different tags (one row without); real captions, which
    decoding must ignore."""
    num_regions = [3, 6, 0, 2] if num_regions is None else num_regions
    return toy.batch(texts=toy.CAPTIONS[:4], tags=TAGS, num_regions=num_regions, mask_type="seq2seq")


def assert_same(cached, full) -> None:
    assert cached.token_ids == full.token_ids
    torch.testing.assert_close(cached.scores, full.scores, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape", ["student", "teacher"])
@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("min_length", [0, MAX_LENGTH])
def test_cached_generate_equals_full_recomputation(shape: str, beam_size: int, min_length: int) -> None:
    model, batch = caption_model(shape), images()
    kwargs = {"beam_size": beam_size, "max_length": MAX_LENGTH, "min_length": min_length}
    full = model.generate(batch, use_cache=False, **kwargs)
    cached = model.generate(batch, **kwargs)  # the default path
    assert_same(cached, full)
    lengths = [len(ids) for ids in full.token_ids]
    special = {model.special_token_ids[k] for k in ("pad", "cls", "sep", "mask")}
    assert not special & {t for ids in full.token_ids for t in ids}  # banned tokens and the final [SEP] stripped
    assert len({tuple(ids) for ids in full.token_ids}) >= 3  # the rows' captions differ
    if min_length == 0:
        assert len(set(lengths)) >= 2 and min(lengths) < MAX_LENGTH - 1  # rows end at different steps
    else:
        assert min(lengths) >= min_length - 1  # [SEP] (stripped) is token `min_length` at the earliest


@pytest.mark.parametrize("shape", ["student", "teacher"])
def test_cached_greedy_and_beam_search_functions_equal_full_ones(shape: str) -> None:
    """The search functions themselves, driven by the model's two step functions, with a batch of one too, a length
    penalty and [SEP] banned for the first 3 tokens."""
    model = caption_model(shape)
    ids = model.special_token_ids
    kwargs = {"bos_token_id": ids["cls"], "eos_token_id": ids["sep"], "max_length": MAX_LENGTH,
              "banned_token_ids": [ids["pad"], ids["cls"], ids["mask"]], "length_penalty": 0.6,
              "min_length": 4}  # fmt: skip
    single = toy.batch(texts=[""], tags=[["table"]], num_regions=[2], mask_type="seq2seq")
    for batch in (images(), single):
        full_step = partial(model.next_token_logits, batch)
        cached_step = CachedCaptionStep(model, batch)
        n = batch.batch_size
        assert_same(greedy_search(cached_step, n, **kwargs), greedy_search(full_step, n, **kwargs))
        beams = {"beam_size": 4, **kwargs}
        assert_same(beam_search(cached_step, n, **beams), beam_search(full_step, n, **beams))


@pytest.mark.parametrize("shape", ["student", "teacher"])
def test_cached_logits_equal_full_logits_step_by_step_and_after_reordering(shape: str) -> None:
    """Teacher-forced prefixes: logits after each token fed to the cache equal the full forward's; a cache whose
    hypotheses are permuted, repeated and dropped (as beam search does) still gives the full forward's logits;
    feeding two tokens at once equals feeding them one by one."""
    model, batch = caption_model(shape), images()
    words = batch.caption_ids[:, :5]  # (4, 5) [CLS] w1 .. w4 of each row's caption
    rows = torch.arange(4)
    cache = model.start_cache(batch, rows)
    for t in range(1, 5):
        cached = model.cached_next_token_logits(cache, words[:, t - 1 : t])
        torch.testing.assert_close(cached, model.next_token_logits(batch, words[:, :t], rows), rtol=1e-4, atol=1e-4)
    index = torch.tensor([2, 0, 0, 3])  # row 1 dropped, row 0 twice, order changed
    moved = cache.select(index)
    cached = model.cached_next_token_logits(moved, words[index, 4:5])
    torch.testing.assert_close(cached, model.next_token_logits(batch, words[index], index), rtol=1e-4, atol=1e-4)
    two = model.start_cache(batch, rows)
    model.cached_next_token_logits(two, words[:, :3])
    cached = model.cached_next_token_logits(two, words[:, 3:5])
    torch.testing.assert_close(cached, model.next_token_logits(batch, words, rows), rtol=1e-4, atol=1e-4)


def test_cached_decoding_feeds_one_token_per_step_and_encodes_each_image_once() -> None:
    """Transformer calls of a beam search: one pass over the tags and regions of the 4 images (not 4 x beams), then
    one new caption token per hypothesis per step."""
    model, batch = caption_model("student"), images()
    shapes = []
    handle = model.vl.register_forward_hook(lambda _m, _args, out: shapes.append(tuple(out.last_hidden_state.shape)))
    try:
        model.generate(batch, beam_size=3, max_length=MAX_LENGTH, min_length=MAX_LENGTH)
    finally:
        handle.remove()
    context = toy.LAYOUT["max_tag_len"] + toy.LAYOUT["max_regions"]
    hidden = model.vl.hidden_size
    assert shapes == [(4, context, hidden)] + [(12, 1, hidden)] * MAX_LENGTH


def test_kv_cache_select_copies_the_context_only_when_rows_change() -> None:
    model, batch = caption_model("student"), images()
    cache = model.start_cache(batch, torch.tensor([0, 0, 1, 1]))  # two beams per row, rows 0 and 1
    model.cached_next_token_logits(cache, batch.caption_ids[[0, 0, 1, 1], :1])
    within_rows = cache.select(torch.tensor([1, 1, 3, 2]))
    assert within_rows.layers[0].context_key is cache.layers[0].context_key
    assert within_rows.caption_length == 1 and torch.equal(within_rows.rows, cache.rows)
    dropped = cache.select(torch.tensor([2, 3]))
    assert dropped.layers[0].context_key.shape[0] == 2 and torch.equal(dropped.rows, cache.rows[2:])
    assert cache.select(torch.arange(4)) is cache
    with pytest.raises(ValueError, match="never encoded"):
        KVCache.empty(2).select(torch.arange(1))
    with pytest.raises(ValueError, match="max_text_len"):
        model.cached_next_token_logits(cache, torch.zeros(4, toy.LAYOUT["max_text_len"], dtype=torch.long))
