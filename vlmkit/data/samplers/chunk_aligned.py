"""Wraps another sampler so the frame count is a multiple of a chunked video encoder's chunk size."""
from __future__ import annotations

import math
from typing import Literal

import numpy as np

from vlmkit.data.samplers.base import FrameSampler, check_count
from vlmkit.registry import SAMPLERS
from vlmkit.schema import Component


@SAMPLERS.register("chunk_aligned")
class ChunkAlignedSampler(FrameSampler):
    """Runs ``sampler`` and adjusts its count k to a multiple m of ``chunk_size`` (VideoGPT+ encodes 4-frame
    chunks; it pads with zero frames instead, which vlmkit never does).

    ``rounding="up"``: m = ceil(k / chunk) * chunk, ``"down"``: floor (at least one chunk).  m <= k keeps the
    inner frames at ``linspace(0, k-1, m, dtype=int)``; m > k spreads m frames evenly over the span the inner
    sampler covered (distinct frames where the span has them, repeats otherwise).
    """

    name = "chunk_aligned"

    def __init__(self, sampler: Component("samplers"), chunk_size: int = 4,
                 rounding: Literal["up", "down"] = "up"):
        from vlmkit.registry import SAMPLERS as registry

        self.inner = sampler if isinstance(sampler, FrameSampler) else registry.build(sampler, "sampler")
        self.chunk_size = check_count(chunk_size, "chunk_size", self.name)
        if rounding not in ("up", "down"):
            raise ValueError(f"sampler '{self.name}': rounding must be 'up' or 'down', got {rounding!r}")
        self.rounding = rounding
        self.max_frames = self._aligned(self.inner.max_frames)

    def _aligned(self, count: int) -> int:
        chunks = math.ceil(count / self.chunk_size) if self.rounding == "up" else count // self.chunk_size
        return max(1, chunks) * self.chunk_size

    def eval_counterpart(self):
        from vlmkit.video_sampling import eval_counterpart

        inner = eval_counterpart(self.inner)
        return self if inner is self.inner else ChunkAlignedSampler(inner, self.chunk_size, self.rounding)

    def indices(self, num_frames: int, fps: float | None, rng) -> list[int]:
        inner = self.inner(num_frames, fps, rng=rng)
        target = self._aligned(len(inner))
        if target <= len(inner):
            return [inner[i] for i in np.linspace(0, len(inner) - 1, target, dtype=int)]
        return np.linspace(min(inner), max(inner), target, dtype=int).tolist()
