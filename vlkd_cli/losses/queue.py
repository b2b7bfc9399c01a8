"""A FIFO ring buffer of teacher keys: the negatives of token-wise NCE.

Reference: DistillVLM (Fang et al., ICCV 2021, arXiv 2104.02096) contrasts student tokens against "negative
representations stored in a sample queue"; a queue of 4,096 was best (docs/methods.md,
"Choices where the paper is silent"). The queue style follows MoCo (He et al., CVPR 2020, arXiv 1911.05722):
registered buffers and an explicit update under `no_grad`.

State (all registered buffers, so model state dicts, checkpoints and exact resume carry it):
    queue  (K, D) keys, rows [0, filled) valid
    ptr    () long, the next row to write
    filled () long, how many rows hold real keys (≤ K)

Rules (pitfall A8, docs/methods.md "Pitfalls"):
- only detached TEACHER keys are pushed, never student vectors;
- `negatives()` returns only the filled rows: the zero-initialised rows never act as negatives, so a young queue
  simply has fewer negatives;
- under DDP `push` first all-gathers the keys of every rank (rank order), so every rank pushes the same keys and all
  queues stay identical with the same effective K. Every rank must therefore call `push` the same number of times
  (it is a collective), even with zero keys.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vlkd_cli import distributed


class FeatureQueue(nn.Module):
    """Ring buffer of K keys of dimension D.

    Args:
        dim: Key dimension D.
        size: Capacity K (> 0).
        dtype: Storage dtype (default fp32; keys are cast on push).
    """

    queue: Tensor
    ptr: Tensor
    filled: Tensor

    def __init__(self, dim: int, size: int = 4096, *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if dim < 1 or size < 1:
            raise ValueError(f"FeatureQueue needs dim >= 1 and size >= 1, got dim={dim}, size={size}")
        self.dim = dim
        self.size = size
        self.register_buffer("queue", torch.zeros(size, dim, dtype=dtype))  # (K, D)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, size={self.size}"

    def __len__(self) -> int:
        return int(self.filled)

    def negatives(self) -> Tensor:
        """The filled keys, (min(filled, K), D). A view of the buffer: do not modify it in place.

        Before the queue is full, writing started at row 0 and ptr == filled, so the valid rows are [0, filled).
        """
        filled = int(self.filled)
        return self.queue if filled >= self.size else self.queue[:filled]

    @torch.no_grad()
    def push(self, keys: Tensor) -> None:
        """Append keys in order, overwriting the oldest; of more than K keys only the last K remain.

        Args:
            keys: (M, D) teacher keys (detached here; M may be 0). Under DDP the keys of all ranks are gathered
                first and pushed in rank order (a collective: call it on every rank).
        """
        if keys.dim() != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"FeatureQueue.push expects (M, {self.dim}) keys, got {tuple(keys.shape)}")
        keys = keys.detach().to(device=self.queue.device, dtype=self.queue.dtype)  # (M, D)
        if distributed.is_distributed():
            keys = torch.cat(distributed.all_gather_tensor(keys.contiguous()), dim=0)  # (Σ_rank M, D), rank order
        count = keys.shape[0]
        if count == 0:
            return
        kept = min(count, self.size)
        # Write position of key n (0-based in this push) is (ptr + n) mod K; only the last `kept` keys survive.
        rows = (self.ptr + torch.arange(count - kept, count, device=self.queue.device)) % self.size  # (kept,)
        self.queue[rows] = keys[count - kept:]
        self.ptr.copy_((self.ptr + count) % self.size)
        self.filled.copy_(torch.clamp(self.filled + count, max=self.size))

    @torch.no_grad()
    def reset(self) -> None:
        """Empty the queue (contents zeroed, ptr and filled 0)."""
        self.queue.zero_()
        self.ptr.zero_()
        self.filled.zero_()
