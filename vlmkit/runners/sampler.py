"""A distributed sampler that can start part-way through an epoch (exact mid-epoch resume)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Optional

import torch
from torch.utils.data import Dataset, DistributedSampler

from vlmkit.runners.length_grouping import grouped_order


class ResumableSampler(DistributedSampler):
    """DistributedSampler (same order for a given seed and epoch) that skips the first ``start`` indices.

    Skipping indices, rather than drawing and discarding batches, means resuming costs no data loading.
    With ``lengths`` and ``group_size`` the epoch's order is length-grouped (see ``length_grouping``) before it
    is dealt to the ranks, so every rank's step-k batch comes from the same stretch of similar lengths.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, shuffle: bool, seed: int,
                 drop_last: bool, lengths: Optional[Sequence[int]] = None, group_size: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        if lengths is not None and not drop_last:
            raise ValueError("length grouping deals whole batches and needs drop_last=True")
        self.lengths, self.group_size = lengths, group_size
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def _grouped_indices(self) -> list[int]:
        if self.shuffle:  # DistributedSampler's own order for (seed, epoch), before it is dealt to the ranks
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.dataset), generator=generator).tolist()
        else:
            order = list(range(len(self.dataset)))
        order = grouped_order(order[:self.total_size], self.lengths, self.group_size)
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        indices = self._grouped_indices() if self.lengths is not None else list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return max(self.num_samples - self.start, 0)
