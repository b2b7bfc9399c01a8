"""Scoring image-text pairs with a retrieval model, batched: the cross-encoder's ITM logit of each (image, text)
pair, and the dual encoder's image and text embeddings. Shared by validation during training and by
`eval-retrieval` (full matrices, re-ranking) so both score exactly alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from vlkd_cli.data.batching import batched
from vlkd_cli.data.vl_datasets import Sample, VLCollator

Advance = Callable[[int], None]


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def itm_pair_scores(model, collator: VLCollator, pairs: Sequence[Sample], batch_size: int,
                    advance: Advance | None = None) -> np.ndarray:  # fmt: skip
    """(P,) float32 match logits of the pairs (each Sample: the image at `image_index` with `text`)."""
    out = np.empty(len(pairs), dtype=np.float32)
    start = 0
    for chunk in batched(pairs, batch_size):
        batch = collator(chunk).vl.to(_device(model))
        out[start : start + len(chunk)] = model.itm_scores(batch).float().cpu().numpy()
        start += len(chunk)
        if advance is not None:
            advance(len(chunk))
    return out


@torch.inference_mode()
def image_embeddings(model, collator: VLCollator, image_indices: Sequence[int], batch_size: int,
                     advance: Advance | None = None) -> torch.Tensor:  # fmt: skip
    """(I, P) L2-normalised image embeddings of a dual encoder (rows of the regions artifact)."""
    parts = []
    for chunk in batched(image_indices, batch_size):
        batch = collator.images_only(chunk).to(_device(model))
        parts.append(model.encode_image(batch.region_features, batch.region_boxes, batch.region_mask))
        if advance is not None:
            advance(len(chunk))
    return torch.cat(parts)


@torch.inference_mode()
def text_embeddings(model, collator: VLCollator, texts: Sequence[Sample], batch_size: int,
                    advance: Advance | None = None) -> torch.Tensor:  # fmt: skip
    """(T, P) L2-normalised caption embeddings of a dual encoder (the caption segment only: never the tags)."""
    parts = []
    for chunk in batched(texts, batch_size):
        batch = collator(chunk).vl.to(_device(model))
        parts.append(model.encode_text(batch.caption_ids, batch.caption_mask))
        if advance is not None:
            advance(len(chunk))
    return torch.cat(parts)
