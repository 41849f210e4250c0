"""Frames at a fixed rate (1 fps by default), capped at ``max_frames`` and raised to ``min_frames``."""
from __future__ import annotations

import numpy as np

from vlmkit.data.samplers.base import FrameSampler, check_count
from vlmkit.registry import SAMPLERS


@SAMPLERS.register("fps", aliases=["fps_capped"])
class FpsSampler(FrameSampler):
    """VideoGPT+'s rule (model/dataloader.py ``_get_rawvideo_dec``):

    candidates ``range(0, n, round(fps / target_fps))``; more than ``max_frames`` -> the candidates at
    ``linspace(0, len-1, max_frames, dtype=int)``; fewer than ``min_frames`` -> re-stride:
    ``m = min(min_frames, n)``, ``stride = max(1, (n-1) // (m-1))``, ``range(0, stride*(m-1)+1, stride)``.
    """

    name = "fps"

    def __init__(self, target_fps: float = 1.0, max_frames: int = 16, min_frames: int = 8):
        if isinstance(target_fps, bool) or not target_fps > 0:
            raise ValueError(f"sampler '{self.name}': target_fps must be positive, got {target_fps!r}")
        self.target_fps = float(target_fps)
        self.max_frames = check_count(max_frames, "max_frames", self.name)
        self.min_frames = check_count(min_frames, "min_frames", self.name)
        if self.min_frames > self.max_frames:
            raise ValueError(f"sampler '{self.name}': min_frames ({min_frames}) > max_frames ({max_frames})")

    def indices(self, num_frames: int, fps: float | None, rng) -> list[int]:
        if fps is None:
            raise ValueError(f"sampler '{self.name}' needs the video's fps, got None")
        stride = max(1, round(fps / self.target_fps))
        candidates = list(range(0, num_frames, stride))
        if len(candidates) > self.max_frames:
            return [candidates[i] for i in np.linspace(0, len(candidates) - 1, self.max_frames, dtype=int)]
        if len(candidates) >= self.min_frames:
            return candidates
        count = min(self.min_frames, num_frames)
        if count == 1:
            return [0]
        stride = max(1, (num_frames - 1) // (count - 1))
        return list(range(0, stride * (count - 1) + 1, stride))
