"""Image-text matching (cross-encoder retrieval and pre-training): [CLS] -> one match logit, BCE.

Negatives come from other images of the batch: each text is paired once with the regions of a random other row
whose image id differs (Oscar swaps the caption or the image of a pair; swapping the image keeps the text side, so
the positive and negative of a caption share its tokens). Rows whose batch holds no other image get no negative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlkd_cli.structures.vl_batch import VLBatch, concat_batches, pair_rows


class ITMHead(nn.Module):
    """[CLS] hidden state -> match logit (BERT's pooler: dense + tanh, then a linear score).

    Args:
        hidden_size: D.
        dropout: Dropout before the score.
        initializer_range: Std of the normal init.
    """

    def __init__(self, hidden_size: int, *, dropout: float = 0.1, initializer_range: float = 0.02) -> None:
        super().__init__()
        self.pooler = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.score = nn.Linear(hidden_size, 1)
        for linear in (self.pooler, self.score):
            nn.init.normal_(linear.weight, std=initializer_range)
            nn.init.zeros_(linear.bias)

    def forward(self, cls_state: Tensor) -> Tensor:
        """(B, D) -> (B,) match logits."""
        return self.score(self.dropout(torch.tanh(self.pooler(cls_state)))).squeeze(-1)


def itm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean BCE-with-logits of (B,) logits against (B,) 0/1 labels."""
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def sample_negative_rows(image_ids: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """For each row, a random row of another image.

    Args:
        image_ids: (B,) long image id of each row.
        generator: CPU generator (global RNG if None).

    Returns:
        rows (M,) long that get a negative, and partners (M,) long: the row whose regions they take.
    """
    ids = image_ids.cpu()
    other = ids[:, None] != ids[None, :]  # (B, B) candidate partners
    has_partner = other.any(dim=1)
    weights = other[has_partner].float()  # (M, B)
    partners = torch.multinomial(weights, 1, generator=generator).squeeze(1) if weights.numel() else weights.long()
    rows = torch.nonzero(has_partner).squeeze(1)
    return rows, partners.reshape(-1).long()


def make_itm_pairs(
    batch: VLBatch, image_ids: Tensor, generator: torch.Generator | None = None
) -> tuple[VLBatch, Tensor]:
    """The B positive pairs followed by M <= B negatives (text of row i with regions of another image).

    Args:
        batch: B matching image-text pairs.
        image_ids: (B,) long image ids.
        generator: CPU generator for the partner draw.

    Returns:
        The (B + M)-row batch and its (B + M,) float labels (1 positive, 0 negative).
    """
    rows, partners = sample_negative_rows(image_ids, generator)
    negatives = pair_rows(batch, rows, partners)
    pairs = concat_batches([batch, negatives])
    labels = torch.cat([torch.ones(batch.batch_size), torch.zeros(rows.shape[0])]).to(batch.input_ids.device)
    return pairs, labels


def ranking_loss(logits: Tensor, group: int) -> Tensor:
    """ViLT/METER `irtr`: (B·group,) logits, each group the positive then its negatives → mean cross-entropy
    of the softmax over the group with the positive as the target."""
    scores = logits.float().view(-1, group)  # (B, 1 + K)
    return F.cross_entropy(scores, torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device))


def sample_negative_texts(image_ids: Tensor, count: int, generator: torch.Generator | None = None,
                          weights: Tensor | None = None) -> Tensor:  # fmt: skip
    """(B, count) rows of the batch whose image differs from row b's (without replacement while enough exist):
    uniformly, or with probability proportional to `weights` (B, B) (ALBEF's hard negatives: a softmax of the
    in-batch image-text similarities).

    Raises:
        ValueError: A row has no caption of another image in the batch.
    """
    ids = image_ids.cpu()
    other = (ids[:, None] != ids[None, :]).float()  # (B, B)
    if (other.sum(dim=1) == 0).any():
        raise ValueError("a batch holds captions of one image only: no negatives for the ranking objective")
    replacement = bool((other.sum(dim=1) < count).any())
    if weights is not None:  # a tiny floor keeps every other-image caption drawable (no all-zero row)
        other = other * (weights.detach().float().cpu() + 1e-12)
    return torch.multinomial(other, count, replacement=replacement, generator=generator)  # (B, count)


def make_ranking_pairs(
    batch: VLBatch, image_ids: Tensor, negatives: int, generator: torch.Generator | None = None,
    weights: Tensor | None = None,
) -> VLBatch:
    """Each image with its own caption, then with `negatives` captions of other images of the batch (ViLT/METER's
    irtr draws random false texts; these come from the batch; with `weights` (B, B), drawn in proportion to them:
    hard negatives). Rows are image-major: B groups of 1 + negatives."""
    size = batch.batch_size
    negative_texts = sample_negative_texts(image_ids, negatives, generator, weights)  # (B, K)
    texts = torch.cat([torch.arange(size)[:, None], negative_texts], dim=1)
    images = torch.arange(size)[:, None].expand(size, negatives + 1)  # (B, 1 + K)
    return pair_rows(batch, texts.flatten(), images.flatten())
