"""Where training batches come from: a map-style dataset through the resumable sampler, or a stream.

Map-style: an epoch is a fixed number of batches (known in advance); the data position is the number of
micro-batches consumed in the epoch, and the sampler skips to it on resume.
Stream (an ``IterableDataset`` with ``state_dict`` / ``load_state_dict``): no sampler; an epoch is one pass,
ending when any rank's stream runs out (every rank ends it together, see ``skipping.plan_step``); the data
position is the dataset's own ``state_dict`` (one per rank), kept up to date with ``consumed(metas)`` when
DataLoader workers read the data.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Optional

import torch
from torch.utils.data import (
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    default_collate,
)

from vlmkit.errors import ConfigError, DataError
from vlmkit.protocols import Collates, Resumable, TracksConsumed
from vlmkit.runners import distributed
from vlmkit.runners.batches import DeviceFeed, feed_settings
from vlmkit.runners.distributed import DistEnv
from vlmkit.runners.length_grouping import MEGABATCH_BATCHES, dataset_lengths
from vlmkit.runners.sampler import ResumableSampler
from vlmkit.runners.workers import NumWorkers, auto_workers, check_num_workers


def collate_fn_of(dataset: Dataset) -> Callable:
    """A dataset's own ``collater`` when it has one, torch's default collation otherwise."""
    if isinstance(dataset, ConcatDataset):
        return collate_fn_of(dataset.datasets[0])
    return dataset.collater if isinstance(dataset, Collates) else default_collate


def parts_of(dataset: Dataset) -> list[Dataset]:
    return list(dataset.datasets) if isinstance(dataset, ConcatDataset) else [dataset]


def call_hook(dataset: Dataset, hook: str, *args: Any) -> list:
    """Call an optional dataset method (``set_epoch``, ``set_output_dir``, ...) on it or its parts."""
    return [getattr(part, hook)(*args) for part in parts_of(dataset) if hasattr(part, hook)]


def is_stream(dataset: Dataset) -> bool:
    return isinstance(dataset, IterableDataset)


class TrainData:
    """The training batches of one process, epoch by epoch (see the module docstring)."""

    def __init__(self, dataset: Dataset, env: DistEnv, *, batch_size: int, grad_accum_steps: int, shuffle: bool,
                 seed: int, num_workers: NumWorkers, pin_memory: bool, group_by_length: bool = False,
                 packing: Optional[Callable[[Callable], Callable]] = None):
        self.dataset, self.env = dataset, env
        self.packing = packing  # wraps the collater: packed rows (run.packing, runners/packing.py)
        self.batch_size, self.grad_accum_steps, self.seed = batch_size, grad_accum_steps, seed
        self.pin_memory = pin_memory
        self.stream = is_stream(dataset)
        self.num_workers = self._workers(check_num_workers(num_workers, "run.num_workers"))
        self.iterator: Optional[Iterator] = None
        self.device, self.prefetch = torch.device("cpu"), False  # where batches go (feed_to)
        if self.stream:
            if group_by_length:
                raise ConfigError("run.group_by_length", f"the streaming training dataset {type(dataset).__name__} "
                                                         f"has no lengths to group by; group_by_length works with "
                                                         f"map-style datasets (set it to false)")
            self._check_stream()
            self.sampler = None
            self.batches_per_epoch: Optional[int] = None
            size = len(dataset) if hasattr(dataset, "__len__") else None
            self.estimated_steps_per_epoch = (size // env.world_size // batch_size // grad_accum_steps
                                              if size is not None else None)
        else:
            grouping = ({"lengths": dataset_lengths(dataset),
                         "group_size": batch_size * env.world_size * MEGABATCH_BATCHES} if group_by_length else {})
            self.sampler = ResumableSampler(dataset, num_replicas=env.world_size, rank=env.rank, shuffle=shuffle,
                                            seed=seed, drop_last=True, **grouping)
            self.batches_per_epoch = self.sampler.num_samples // batch_size
            self.estimated_steps_per_epoch = self.batches_per_epoch // grad_accum_steps

    def _workers(self, setting: NumWorkers) -> int:
        if setting != "auto":
            return setting
        if self.stream and not isinstance(self.dataset, TracksConsumed):
            return 0  # its position could not be tracked through workers (see _check_stream)
        size = len(self.dataset) if hasattr(self.dataset, "__len__") else None
        return auto_workers(None if size is None else size // self.env.world_size)

    def _check_stream(self) -> None:
        name = type(self.dataset).__name__
        if not isinstance(self.dataset, Resumable):
            raise ConfigError("datasets", f"the streaming training dataset {name} cannot save its position "
                                          f"(no state_dict/load_state_dict), so a run could not resume exactly")
        if self.num_workers > 0 and not isinstance(self.dataset, TracksConsumed):
            raise ConfigError("run.num_workers", f"the streaming training dataset {name} has no consumed(metas), "
                                                 f"so its position cannot be tracked while DataLoader workers read "
                                                 f"it; set run.num_workers: 0")

    def feed_to(self, device: torch.device) -> None:
        """Batches go to ``device``: pinned and, with DataLoader workers, one batch ahead on a CUDA side stream
        (``batches.feed_settings``)."""
        settings = feed_settings(device, self.num_workers)
        self.device, self.pin_memory, self.prefetch = device, settings["pin_memory"], settings["prefetch"]

    # ------------------------------------------------------------------ epochs
    def epoch_is_over(self, batches_in_epoch: int) -> bool:
        """Map-style: no whole optimizer step is left in the epoch (a stream says so by running out)."""
        return not self.stream and batches_in_epoch + self.grad_accum_steps > self.batches_per_epoch

    def start_epoch(self, epoch: int, batches_in_epoch: int) -> None:
        call_hook(self.dataset, "set_epoch", epoch)
        # An explicit generator: creating the iterator must not draw from the global RNG (exact resume).
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch * 1_009 + self.env.rank)
        common = {"batch_size": self.batch_size, "drop_last": True, "num_workers": self.num_workers,
                  "collate_fn": self._collate(), "pin_memory": self.pin_memory, "generator": generator,
                  "persistent_workers": False}
        if self.stream:
            loader = DataLoader(self.dataset, **common)
        else:
            self.sampler.set_position(epoch, batches_in_epoch * self.batch_size)
            loader = DataLoader(self.dataset, sampler=self.sampler, **common)
        self.iterator = DeviceFeed(iter(loader), self.device, self.prefetch)

    def _collate(self) -> Callable:
        collate = collate_fn_of(self.dataset)
        return self.packing(collate) if self.packing is not None else collate

    def draw(self) -> tuple[list[Optional[Any]], bool]:
        """The next step's micro-batches (None for a batch whose samples were all skipped), and whether the
        data ran out (the list is then padded with None)."""
        micro: list[Optional[Any]] = []
        for _ in range(self.grad_accum_steps):
            try:
                micro.append(next(self.iterator))
            except StopIteration:
                return micro + [None] * (self.grad_accum_steps - len(micro)), True
        return micro, False

    def to_device(self, micro: list[Optional[Any]]) -> list[Optional[Any]]:
        """The micro-batches ``draw`` gave, on the device (copied ahead where the feed prefetches)."""
        return [self.iterator.take() for _ in micro]

    def fetch_ahead(self) -> None:
        """Start copying the next batch to the device (when prefetching), while the current step computes."""
        self.iterator.fetch_ahead()

    def consumed(self, micro: list[Optional[Any]]) -> None:
        """Move a stream's position past batches the loop received from DataLoader workers."""
        if not (self.stream and self.num_workers > 0):
            return  # without workers the stream's own iterator is the position
        for batch in micro:
            if isinstance(batch, dict) and batch.get("meta"):
                self.dataset.consumed(batch["meta"])

    # ------------------------------------------------------------------ position
    def state(self) -> Optional[list]:
        """Every rank's stream position, in rank order (collective), or None for map-style data."""
        if not self.stream:
            return None
        return distributed.gather_objects([self.dataset.state_dict()])

    def load_state(self, states: Optional[list], where: str) -> None:
        if not self.stream:
            return
        if not states or len(states) != self.env.world_size:
            raise DataError(f"{where} holds no stream position for {self.env.world_size} process(es) "
                            f"(found {len(states) if states else 0}); it was not written by a streaming run with "
                            f"this many processes")
        self.dataset.load_state_dict(states[self.env.rank])
