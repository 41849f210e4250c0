"""Evenly spaced frames over the whole range, first and last included."""
from __future__ import annotations

import numpy as np

from vlmkit.data.samplers.base import FrameSampler, check_count
from vlmkit.registry import SAMPLERS


@SAMPLERS.register("linspace", aliases=["uniform"])
class LinspaceSampler(FrameSampler):
    """``np.linspace(0, n-1, num_frames, dtype=int)``: VideoGPT+'s cap and Video-XL's eval rule."""

    name = "linspace"

    def __init__(self, num_frames: int = 16):
        self.num_frames = self.max_frames = check_count(num_frames, "num_frames", self.name)

    def indices(self, num_frames: int, fps: float | None, rng) -> list[int]:
        return np.linspace(0, num_frames - 1, self.num_frames, dtype=int).tolist()
