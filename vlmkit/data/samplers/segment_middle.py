"""Evaluation rule: the middle frame of each of ``num_frames`` equal segments."""
from __future__ import annotations

from typing import Literal

from vlmkit.data.samplers.base import FrameSampler, check_count, segment_edges
from vlmkit.registry import SAMPLERS


@SAMPLERS.register("segment_middle", aliases=["middle"])
class SegmentMiddleSampler(FrameSampler):
    """Segment midpoints, by one of two published rules.

    - ``interval`` (default; the same segments as ``segment_random``, so train and eval agree): edges
      ``e = linspace(0, n, k+1).astype(int)``, index ``(e[i] + e[i+1]) // 2`` (PLLaVA/VideoChat2 "middle").
    - ``mvbench``: ``seg = (n-1)/k``, index ``int(seg/2 + round(seg*i))`` (the MVBench notebook's get_index,
      also PLLaVA's and VideoGPT+'s MVBench evaluation).
    """

    name = "segment_middle"

    def __init__(self, num_frames: int = 16, rule: Literal["interval", "mvbench"] = "interval"):
        self.num_frames = self.max_frames = check_count(num_frames, "num_frames", self.name)
        if rule not in ("interval", "mvbench"):
            raise ValueError(f"sampler '{self.name}': rule must be 'interval' or 'mvbench', got {rule!r}")
        self.rule = rule

    def indices(self, num_frames: int, fps: float | None, rng) -> list[int]:
        if self.rule == "mvbench":
            seg = (num_frames - 1) / self.num_frames
            return [int(seg / 2 + round(seg * i)) for i in range(self.num_frames)]
        edges = segment_edges(num_frames, self.num_frames)
        return [min(int(lo + hi) // 2, num_frames - 1) for lo, hi in zip(edges[:-1], edges[1:])]
