"""Weighted mixing of several datasets (``sample_ratio``), deterministic and resumable.

- All sources map-style: ``MixedDataset`` is itself map-style.  Item ``i`` of epoch ``e`` is a pure function
  of (seed, e, i): the source sequence is drawn once from ``rng(seed, e)`` with the ratios, and the n-th draw
  of a source takes item n of a seeded permutation of that source (a new permutation each time the source is
  used up).  The runner's distributed sampler then gives each rank its indices and skips to the resumed step,
  so the whole stream is fixed by (seed, rank, step).
- Any source streaming (webdataset shards): ``MixedStream`` draws the source of step n from
  ``rng(seed, rank, n)`` and keeps each source's own resumable state; ``state_dict`` holds both.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

import numpy as np
from torch.utils.data import Dataset, IterableDataset

from vlmkit.errors import ConfigError, DataError
from vlmkit.protocols import EpochAware, ReportsBadSamples, Resumable


def normalised_ratios(names: Sequence[str], sample_ratio: Optional[Mapping[str, float]],
                      sizes: Sequence[int]) -> np.ndarray:
    """Probabilities per source; without ratios, proportional to the sources' sizes (plain concatenation)."""
    if sample_ratio is None:
        weights = np.asarray(sizes, dtype=float)
    else:
        unknown = sorted(set(sample_ratio) - set(names))
        missing = [n for n in names if n not in sample_ratio]
        if unknown or missing:
            raise ConfigError("sample_ratio", f"ratios must name every source exactly: unknown {unknown}, missing "
                                              f"{missing}; sources: {list(names)}")
        weights = np.asarray([float(sample_ratio[n]) for n in names])
    if (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError("sample_ratio", f"ratios must be >= 0 with a positive sum, got {weights.tolist()}")
    return weights / weights.sum()


class SourceHooks:
    """The bad-sample hooks a runner calls on a dataset, passed on to every source that has them."""

    sources: list

    def _each(self, hook: str, *args: Any) -> None:
        for source in self.sources:
            if isinstance(source, ReportsBadSamples):
                getattr(source, hook)(*args)

    def bad_samples(self) -> list[dict]:
        return [e for s in self.sources if isinstance(s, ReportsBadSamples) for e in s.bad_samples()]

    def set_output_dir(self, path: str) -> None:
        self._each("set_output_dir", path)

    def write_bad_samples(self) -> None:
        self._each("write_bad_samples")

    def reset_bad_samples(self) -> None:
        self._each("reset_bad_samples")

    def set_max_bad_fraction(self, fraction: float) -> None:
        self._each("set_max_bad_fraction", fraction)

    def check_bad_share(self) -> None:
        self._each("check_bad_share")


class MixedDataset(SourceHooks, Dataset):
    """Map-style mixture: ``length`` items (default: the sources' total) drawn with ``ratios``."""

    def __init__(self, sources: Mapping[str, Dataset], sample_ratio: Optional[Mapping[str, float]] = None,
                 length: Optional[int] = None, seed: int = 0):
        if not sources:
            raise ConfigError("sources", "a mixture needs at least one source dataset")
        self.names = list(sources)
        self.sources = [sources[n] for n in self.names]
        self.sizes = [len(s) for s in self.sources]
        empty = [n for n, size in zip(self.names, self.sizes) if size == 0]
        if empty:
            raise DataError(f"mixture: source(s) {empty} have 0 samples")
        self.probabilities = normalised_ratios(self.names, sample_ratio, self.sizes)
        if length is not None and length < 1:
            raise ConfigError("length", f"must be >= 1 or null, got {length}")
        self.length = length or sum(self.sizes)
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        rng = np.random.default_rng([self.seed, self.epoch])
        self.draws = rng.choice(len(self.sources), size=self.length, p=self.probabilities).astype(np.int32)
        # occurrence number of each draw within its source (0, 1, 2... per source)
        self.occurrence = np.zeros(self.length, dtype=np.int64)
        for k in range(len(self.sources)):
            where = np.flatnonzero(self.draws == k)
            self.occurrence[where] = np.arange(len(where))
        self._perms: dict[tuple[int, int], np.ndarray] = {}
        for source in self.sources:
            if isinstance(source, EpochAware):
                source.set_epoch(epoch)

    def locate(self, index: int) -> tuple[int, int]:
        """(source number, index inside that source) of mixture item ``index``."""
        k = int(self.draws[index])
        cycle, position = divmod(int(self.occurrence[index]), self.sizes[k])
        key = (k, cycle)
        if key not in self._perms:
            if len(self._perms) > 64:
                self._perms.clear()
            self._perms[key] = np.random.default_rng([self.seed, self.epoch, k, cycle]).permutation(self.sizes[k])
        return k, int(self._perms[key][position])

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(f"mixture: index {index} outside 0..{self.length - 1}")
        k, inner = self.locate(index)
        sample = self.sources[k][inner]
        if isinstance(sample, dict) and isinstance(sample.get("meta"), dict):
            sample["meta"]["source"] = self.names[k]
        return sample

    def collater(self, samples):
        return self.sources[0].collater(samples)

    def source_counts(self) -> dict[str, int]:
        return {n: int((self.draws == k).sum()) for k, n in enumerate(self.names)}


class MixedStream(SourceHooks, IterableDataset):
    """Streaming mixture: step n reads from the source drawn by ``rng(seed, rank, n)``; exhausted sources are
    restarted (next epoch of that source).  ``state_dict`` = step + each source's state."""

    def __init__(self, sources: Mapping[str, Any], sample_ratio: Optional[Mapping[str, float]] = None,
                 length: Optional[int] = None, seed: int = 0, rank: Optional[int] = None):
        import os

        self.names = list(sources)
        self.sources = [sources[n] for n in self.names]
        missing = [n for n, s in zip(self.names, self.sources) if not isinstance(s, Resumable)]
        if missing:
            raise ConfigError("sources", f"streaming sources {missing} cannot save their position (no state_dict)")
        sizes = [len(s) for s in self.sources]
        self.probabilities = normalised_ratios(self.names, sample_ratio, sizes)
        self.length = length or sum(sizes)
        self.seed = seed
        self.rank = int(os.environ.get("RANK", 0)) if rank is None else rank
        self.step, self.epoch = 0, 0

    def source_of(self, step: int) -> int:
        rng = np.random.default_rng([self.seed, self.rank, step])
        return int(rng.choice(len(self.sources), p=self.probabilities))

    def __iter__(self) -> Iterator[dict]:
        iterators: dict[int, Iterator] = {}
        passes = [0] * len(self.sources)
        while self.step < self.length:
            k = self.source_of(self.step)
            sample = None
            for _ in range(2):  # the source may end: start its next pass once
                if k not in iterators:
                    iterators[k] = iter(self.sources[k])
                try:
                    sample = next(iterators[k])
                    break
                except StopIteration:
                    passes[k] += 1
                    source = self.sources[k]
                    if isinstance(source, EpochAware):
                        source.set_epoch(source.epoch + 1)
                    iterators.pop(k)
            if sample is None:
                raise DataError(f"mixture: source '{self.names[k]}' yields no sample")
            self.step += 1
            if isinstance(sample.get("meta"), dict):
                sample["meta"]["source"] = self.names[k]
            yield sample

    def state_dict(self) -> dict:
        return {"step": self.step, "sources": {n: s.state_dict() for n, s in zip(self.names, self.sources)}}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        for name, source in zip(self.names, self.sources):
            source.load_state_dict(state["sources"][name])

    def __len__(self) -> int:
        return self.length

    def collater(self, samples):
        return self.sources[0].collater(samples)

    def set_epoch(self, epoch: int) -> None:
        """A new pass: the draw sequence starts again (its sources continue where they are)."""
        self.epoch = int(epoch)
        self.step = 0
