"""A DistributedSampler that can start in the middle of an epoch (exact resume).

The order of epoch e is `torch.randperm(n, seed + e)` (DistributedSampler's rule), padded to a multiple of the
world size and strided by rank; `set_start(k)` skips the first k indices of this rank, so a resumed run sees
exactly the samples an uninterrupted run would have seen next.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first `start` indices of this rank in the current epoch."""
        self.start = start

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start
