"""Hard negatives for a cross-encoder, mined by a dual encoder (ALBEF, Li et al., NeurIPS 2021, "Align before
Fuse", §3.2: the image-text contrastive similarities choose the negatives the ITM head must separate; BLIP keeps
the recipe).

For a batch of B (image, caption) pairs the miner embeds both sides and gives each image a distribution over the
batch's captions:

    w_ij = softmax_j( s · ⟨v_i, t_j⟩ )        (B, B)  s = the dual encoder's learned scale

`ITMModel.prepare` then draws the K ranking negatives of image i from the captions of other images with probability
∝ w_ij: similar captions are drawn often, easy ones rarely, and no caption is ruled out. The miner reads the model's
regions, or its own (`--itm-miner-regions`: a cross-encoder teacher on its detector's boxes, mined by a dual
encoder trained on the student's): a sample is then looked up there by its image id.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from vlkd_cli.artifacts.regions import Regions
from vlkd_cli.data.vl_datasets import Sample, reindexed
from vlkd_cli.errors import InputError
from vlkd_cli.tasks.inference import load_inference_model


class NegativeMiner:
    """A trained dual encoder, frozen, that weights a batch's captions as negatives for each of its images."""

    def __init__(self, path: Path, regions: Regions, device: torch.device, *, own_regions: bool = False) -> None:
        self.loaded = load_inference_model(Path(path), regions, tasks=("retrieval",), device=device)
        if not self.loaded.is_dual:
            raise InputError("--itm-miner must be a dual-encoder retrieval model (finetune --arch dual)", path)
        self.regions = regions if own_regions else None  # None: the samples' image indices are already its own

    @torch.no_grad()
    def weights(self, samples: list[Sample]) -> Tensor:
        """(B, B) row-softmax of the scaled image-text similarities of the batch, on the CPU."""
        model = self.loaded.model
        if self.regions is not None:
            samples = reindexed(samples, self.regions)
        vl = self.loaded.collator(samples).vl.to(self.loaded.device)
        image_emb, text_emb = model.encode_batch(vl)  # (B, P) each, L2-normalised
        return torch.softmax(model.scale() * image_emb.float() @ text_emb.float().T, dim=1).cpu()
