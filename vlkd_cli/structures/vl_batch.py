"""The one sequence layout shared by teacher and student, and its 2-D attention masks.

Layout (Oscar's; pitfall A1 of docs/methods.md, "Pitfalls": token i means the same thing in both models, whatever
the caption length)::

    [CLS] caption [SEP] <pad to max_text_len> | tags [SEP] <pad to max_tag_len> | regions <pad to max_regions>
    '----------- caption segment ------------' '-------- tag segment ---------' '------ region segment ------'
    positions 0 .. max_text_len-1               max_text_len .. T-1               T .. N-1

T = max_text_len + max_tag_len text positions (token type 0 caption, 1 tags) and R = max_regions region slots, so
N = T + R for every batch. With `tags=None` the tag segment is all padding (the layout still has its positions).

Masks are bool with True = may attend, indexed [query, key]:

- "full": every valid token attends every valid token (VQA, ITM, pre-training, dual-encoder towers).
- "seq2seq" (Oscar captioning): caption -> caption causal (key <= query), caption -> tags/regions allowed,
  tags <-> regions full, tags/regions -> caption not allowed.

In both, padded keys are never attended, and a padded query row attends only to itself so its softmax stays
finite; such rows are reported invalid by `query_mask` and must be excluded from any loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

MaskType = Literal["full", "seq2seq"]
MASK_TYPES: tuple[str, ...] = ("full", "seq2seq")
GEOMETRY_DIM = 6  # x1/W, y1/H, x2/W, y2/H, w/W, h/H


@dataclass
class VLBatch:
    """A padded batch in the shared layout (see the module docstring).

    Attributes:
        input_ids: (B, T) long caption + tag token ids, [PAD] where invalid.
        token_type_ids: (B, T) long, 0 on the caption segment, 1 on the tag segment.
        text_mask: (B, T) bool, valid caption/tag tokens.
        region_features: (B, R, D) float region features, zeros where invalid.
        region_boxes: (B, R, 6) float box geometry x1/W, y1/H, x2/W, y2/H, w/W, h/H.
        region_mask: (B, R) bool, valid regions.
        attention_mask: (B, N, N) bool [query, key], True = may attend.
        max_text_len: Length of the caption segment (the first `max_text_len` text positions).
        mask_type: "full" or "seq2seq", the rule `attention_mask` was built with.
    """

    input_ids: Tensor
    token_type_ids: Tensor
    text_mask: Tensor
    region_features: Tensor
    region_boxes: Tensor
    region_mask: Tensor
    attention_mask: Tensor
    max_text_len: int
    mask_type: str

    @property
    def batch_size(self) -> int:
        return self.input_ids.shape[0]

    @property
    def num_text_tokens(self) -> int:
        """T = max_text_len + max_tag_len."""
        return self.input_ids.shape[1]

    @property
    def query_mask(self) -> Tensor:
        """(B, N) bool: valid tokens, i.e. the attention rows and hidden states that carry meaning."""
        return query_mask(self.text_mask, self.region_mask)

    @property
    def caption_ids(self) -> Tensor:
        """(B, max_text_len) long token ids of the caption segment ([CLS] caption [SEP] pad)."""
        return self.input_ids[:, : self.max_text_len]

    @property
    def caption_mask(self) -> Tensor:
        """(B, max_text_len) bool valid tokens of the caption segment."""
        return self.text_mask[:, : self.max_text_len]

    def to(self, device: torch.device | str) -> VLBatch:
        """A copy with every tensor moved to `device`."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return VLBatch(**{k: v.to(device) if isinstance(v, Tensor) else v for k, v in moved.items()})


def query_mask(text_mask: Tensor, region_mask: Tensor) -> Tensor:
    """(B, T) and (B, R) bool -> (B, N) bool valid positions of the whole sequence."""
    return torch.cat([text_mask, region_mask], dim=1)


def full_attention_mask(valid: Tensor) -> Tensor:
    """Every valid token attends every valid token; padded rows attend only to themselves.

    Args:
        valid: (B, N) bool valid positions.

    Returns:
        (B, N, N) bool [query, key].
    """
    mask = valid[:, :, None] & valid[:, None, :]  # (B, N, N)
    return _self_attend_padded_rows(mask, valid)


def seq2seq_attention_mask(text_mask: Tensor, region_mask: Tensor, max_text_len: int) -> Tensor:
    """Oscar's captioning mask (microsoft/Oscar `CaptionTensorizer.tensorize_example`).

    Args:
        text_mask: (B, T) bool valid caption/tag tokens; the caption segment is the first `max_text_len`.
        region_mask: (B, R) bool valid regions.
        max_text_len: Length of the caption segment.

    Returns:
        (B, N, N) bool [query, key]: caption -> caption causal, caption -> tags/regions, tags/regions <-> tags/
        regions; nothing -> padding; padded rows -> themselves only.
    """
    valid = query_mask(text_mask, region_mask)  # (B, N)
    n = valid.shape[1]
    position = torch.arange(n, device=valid.device)
    is_caption = position < max_text_len  # (N,)
    causal = position[:, None] >= position[None, :]  # (N, N) key <= query
    # A caption key is visible only to caption queries at or after it; other keys are visible to everyone.
    rule = torch.where(is_caption[None, :], is_caption[:, None] & causal, torch.ones_like(causal))  # (N, N)
    mask = valid[:, :, None] & valid[:, None, :] & rule[None]  # (B, N, N)
    return _self_attend_padded_rows(mask, valid)


def _self_attend_padded_rows(mask: Tensor, valid: Tensor) -> Tensor:
    """Let each padded query row attend to itself only, so its softmax is finite (its output is never used)."""
    eye = torch.eye(mask.shape[-1], dtype=torch.bool, device=mask.device)  # (N, N)
    return mask | (eye[None] & ~valid[:, :, None])


def build_attention_mask(text_mask: Tensor, region_mask: Tensor, max_text_len: int, mask_type: str) -> Tensor:
    """(B, N, N) bool mask of `mask_type` ("full" or "seq2seq") for the given valid tokens."""
    if mask_type == "full":
        return full_attention_mask(query_mask(text_mask, region_mask))
    if mask_type == "seq2seq":
        return seq2seq_attention_mask(text_mask, region_mask, max_text_len)
    raise ValueError(f"unknown mask type {mask_type!r}; known: {', '.join(MASK_TYPES)}")


def _float_tensor(values: Tensor | np.ndarray) -> Tensor:
    """A float32 CPU tensor copy (safe for read-only memory-mapped arrays and fp16 storage)."""
    if isinstance(values, Tensor):
        return values.detach().to("cpu", torch.float32)
    return torch.tensor(np.asarray(values, dtype=np.float32))


def box_geometry(boxes_xyxy: Tensor | np.ndarray, height: float, width: float) -> Tensor:
    """Oscar's 6-d box geometry.

    Args:
        boxes_xyxy: (n, 4) boxes x1, y1, x2, y2 in pixels of an image of `height` x `width`.

    Returns:
        (n, 6) float32: x1/W, y1/H, x2/W, y2/H, (x2-x1)/W, (y2-y1)/H.
    """
    boxes = _float_tensor(boxes_xyxy).reshape(-1, 4)
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    return torch.stack([x1 / width, y1 / height, x2 / width, y2 / height, (x2 - x1) / width, (y2 - y1) / height], 1)


def _segment(ids: list[int], length: int, *, prefix: list[int], suffix: list[int], pad_id: int) -> list[int]:
    """prefix + ids (truncated at the end so the segment fits) + suffix, padded to `length`."""
    room = length - len(prefix) - len(suffix)
    tokens = prefix + ids[:room] + suffix
    return tokens + [pad_id] * (length - len(tokens))


def _text_part(
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    tags: Sequence[Sequence[str]] | None,
    max_text_len: int,
    max_tag_len: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Token ids (B, T), token types (B, T) and valid mask (B, T) of the caption and tag segments."""
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    caption_ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
    tag_ids = tokenizer([" ".join(t) for t in tags], add_special_tokens=False)["input_ids"] if tags else []
    rows, lengths = [], []  # lengths: valid (caption, tag) tokens per row
    for i in range(len(texts)):
        caption = _segment(caption_ids[i], max_text_len, prefix=[cls_id], suffix=[sep_id], pad_id=pad_id)
        if tags is None:
            tag, n_tag = [pad_id] * max_tag_len, 0
        else:
            tag = _segment(tag_ids[i], max_tag_len, prefix=[], suffix=[sep_id], pad_id=pad_id)
            n_tag = min(len(tag_ids[i]), max_tag_len - 1) + 1
        rows.append(caption + tag)
        lengths.append((min(len(caption_ids[i]), max_text_len - 2) + 2, n_tag))
    input_ids = torch.tensor(rows, dtype=torch.long).reshape(len(texts), max_text_len + max_tag_len)
    n_caption, n_tag = torch.tensor(lengths, dtype=torch.long).reshape(-1, 2).unbind(dim=1)  # (B,), (B,)
    position = torch.arange(max_text_len + max_tag_len)  # (T,)
    in_caption = position[None] < n_caption[:, None]  # (B, T)
    in_tags = (position[None] >= max_text_len) & (position[None] < max_text_len + n_tag[:, None])  # (B, T)
    text_mask = in_caption | in_tags
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, max_text_len:] = 1
    return input_ids, token_type_ids, text_mask


def _region_part(
    region_features: Sequence[Tensor | np.ndarray],
    boxes: Sequence[Tensor | np.ndarray],
    image_sizes: Sequence[tuple[float, float]],
    max_regions: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Padded features (B, R, D), geometry (B, R, 6) and mask (B, R); regions past `max_regions` are dropped."""
    feats = [_float_tensor(f) for f in region_features]
    dims = {f.shape[1] for f in feats if f.ndim == 2}
    if len(dims) != 1 or any(f.ndim != 2 for f in feats):
        raise ValueError(
            f"region features must be 2-D with one feature dim, got shapes {[tuple(f.shape) for f in feats]}"
        )
    batch, dim = len(feats), dims.pop()
    features = torch.zeros(batch, max_regions, dim)
    geometry = torch.zeros(batch, max_regions, GEOMETRY_DIM)
    mask = torch.zeros(batch, max_regions, dtype=torch.bool)
    for i, (feat, box, (height, width)) in enumerate(zip(feats, boxes, image_sizes, strict=True)):
        geom = box_geometry(box, height, width)
        if geom.shape[0] != feat.shape[0]:
            raise ValueError(f"image {i}: {feat.shape[0]} region features but {geom.shape[0]} boxes")
        n = min(feat.shape[0], max_regions)
        features[i, :n], geometry[i, :n], mask[i, :n] = feat[:n], geom[:n], True
    return features, geometry, mask


def build_batch(
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str] | None,
    tags: Sequence[Sequence[str]] | None,
    region_features: Sequence[Tensor | np.ndarray],
    boxes: Sequence[Tensor | np.ndarray],
    image_sizes: Sequence[tuple[float, float]],
    *,
    max_text_len: int,
    max_tag_len: int = 0,
    max_regions: int,
    mask_type: MaskType = "full",
) -> VLBatch:
    """Tokenize, truncate and pad one batch into the shared layout.

    Truncation is deterministic: caption tokens past `max_text_len - 2`, tag tokens past `max_tag_len - 1` (tags are
    joined with spaces in the given order, then tokenized) and regions past `max_regions` (in stored order) are
    dropped.

    Args:
        tokenizer: A fast tokenizer with [CLS], [SEP] and [PAD].
        texts: B captions/questions; None for B empty captions (`[CLS] [SEP]`, e.g. before decoding).
        tags: Per image, its object tag words; None = no tags (the tag segment stays padding).
        region_features: B arrays (n_i, D).
        boxes: B arrays (n_i, 4) xyxy in pixels of the image.
        image_sizes: B (height, width) in pixels.
        max_text_len: Caption segment length, [CLS] and [SEP] included (>= 2).
        max_tag_len: Tag segment length, its [SEP] included (>= 1 when `tags` is given).
        max_regions: Region slots R.
        mask_type: "full" or "seq2seq".

    Returns:
        The batch, on the CPU.
    """
    batch = len(region_features)
    texts = [""] * batch if texts is None else list(texts)
    if not (len(texts) == len(boxes) == len(image_sizes) == batch) or (tags is not None and len(tags) != batch):
        raise ValueError("texts, tags, region_features, boxes and image_sizes must have one entry per image")
    if max_text_len < 2 or max_tag_len < 0 or max_regions < 0:
        raise ValueError("need max_text_len >= 2, max_tag_len >= 0, max_regions >= 0")
    if tags is not None and max_tag_len < 1:
        raise ValueError("tags given but max_tag_len is 0: the tag segment needs room for its [SEP]")
    input_ids, token_type_ids, text_mask = _text_part(tokenizer, texts, tags, max_text_len, max_tag_len)
    features, geometry, region_mask = _region_part(region_features, boxes, image_sizes, max_regions)
    return VLBatch(
        input_ids=input_ids,
        token_type_ids=token_type_ids,
        text_mask=text_mask,
        region_features=features,
        region_boxes=geometry,
        region_mask=region_mask,
        attention_mask=build_attention_mask(text_mask, region_mask, max_text_len, mask_type),
        max_text_len=max_text_len,
        mask_type=mask_type,
    )


def rebuild_mask(batch: VLBatch, mask_type: str | None = None) -> VLBatch:
    """The batch with its attention mask rebuilt from its valid tokens (and optionally a new mask type)."""
    mask_type = batch.mask_type if mask_type is None else mask_type
    mask = build_attention_mask(batch.text_mask, batch.region_mask, batch.max_text_len, mask_type)
    return replace(batch, attention_mask=mask, mask_type=mask_type)


def select_rows(batch: VLBatch, index: Tensor) -> VLBatch:
    """Rows `index` (M,) long of the batch, in that order (rows may repeat)."""
    tensors = {f.name: getattr(batch, f.name) for f in fields(batch) if isinstance(getattr(batch, f.name), Tensor)}
    return replace(batch, **{name: value.index_select(0, index.to(value.device)) for name, value in tensors.items()})


def concat_batches(batches: Sequence[VLBatch]) -> VLBatch:
    """Stack batches of one layout (same T, R, max_text_len, mask type) along the batch dimension."""
    first = batches[0]
    if any((b.max_text_len, b.mask_type) != (first.max_text_len, first.mask_type) for b in batches):
        raise ValueError("cannot concatenate batches of different layouts or mask types")
    tensors = [f.name for f in fields(first) if isinstance(getattr(first, f.name), Tensor)]
    return replace(first, **{name: torch.cat([getattr(b, name) for b in batches]) for name in tensors})


def pair_rows(batch: VLBatch, text_rows: Tensor, region_rows: Tensor) -> VLBatch:
    """A batch whose row i has the caption of row `text_rows[i]` and the image of row `region_rows[i]` ((M,) long).

    The image side is the regions AND the object tags (the tags are the image's detector labels): a negative that
    kept the caption's tags would let a model tell pairs apart by tags vs regions alone, a shortcut that never
    fires at retrieval time, where tags always come with their image. Used for ITM negatives and cross-encoder
    scoring of candidate pairs; the attention mask is rebuilt.
    """
    texts = select_rows(batch, text_rows)
    images = select_rows(batch, region_rows)
    caption = batch.max_text_len  # positions [:caption] are the caption segment, the rest the tag segment

    def splice(name: str) -> Tensor:
        return torch.cat([getattr(texts, name)[:, :caption], getattr(images, name)[:, caption:]], dim=1)

    paired = replace(
        texts,
        input_ids=splice("input_ids"),
        token_type_ids=splice("token_type_ids"),
        text_mask=splice("text_mask"),
        region_features=images.region_features,
        region_boxes=images.region_boxes,
        region_mask=images.region_mask,
    )
    return rebuild_mask(paired)


def with_caption_prefix(batch: VLBatch, prefix: Tensor, pad_token_id: int) -> VLBatch:
    """Replace the caption segment by `prefix` (M, t) ([CLS] + tokens so far, all valid) padded to max_text_len.

    Tags and regions are kept; the attention mask is rebuilt. Used by decoding.
    """
    length = prefix.shape[1]
    if length > batch.max_text_len:
        raise ValueError(f"caption prefix of {length} tokens exceeds max_text_len={batch.max_text_len}")
    input_ids = batch.input_ids.clone()
    input_ids[:, : batch.max_text_len] = pad_token_id
    input_ids[:, :length] = prefix
    text_mask = batch.text_mask.clone()
    text_mask[:, : batch.max_text_len] = False
    text_mask[:, :length] = True
    return rebuild_mask(replace(batch, input_ids=input_ids, text_mask=text_mask))
