"""Frames at a fixed rate, or evenly over the whole video when that gives too many (LLaVA-NeXT / Video-XL)."""
from __future__ import annotations

import numpy as np

from vlmkit.data.samplers.base import FrameSampler, check_count
from vlmkit.data.samplers.linspace import LinspaceSampler
from vlmkit.registry import SAMPLERS


@SAMPLERS.register("fps_upbound")
class FpsUpboundSampler(FrameSampler):
    """Video-XL's training rule (LLaVA-NeXT ``process_video_with_pyav`` with ``video_fps`` and
    ``frames_upbound``) and, in evaluation, its inference rule.

    Training: candidates ``range(0, n, round(fps / target_fps))``; when there are more than ``max_frames`` (the
    upbound), ``linspace(0, n-1, max_frames, dtype=int)`` over the *whole* video instead (not a thinning of the
    candidates, as the ``fps`` sampler does). Fewer candidates are returned as they are; the dataset repeats
    them evenly up to the model's frame count, where the published model takes a shorter video.

    Evaluation (``eval_linspace``, the default): ``linspace(0, n-1, max_frames, dtype=int)`` for every video, as
    Video-XL's inference decodes with decord (lmms-eval ``max_frames_num``, the NIAH haystacks); false evaluates
    with the training rule.
    """

    name = "fps_upbound"

    def __init__(self, target_fps: float = 1.0, max_frames: int = 128, eval_linspace: bool = True):
        if isinstance(target_fps, bool) or not target_fps > 0:
            raise ValueError(f"sampler '{self.name}': target_fps must be positive, got {target_fps!r}")
        self.target_fps = float(target_fps)
        self.max_frames = check_count(max_frames, "max_frames", self.name)
        self.eval_linspace = bool(eval_linspace)

    def eval_counterpart(self) -> FrameSampler:
        return LinspaceSampler(self.max_frames) if self.eval_linspace else self

    def indices(self, num_frames: int, fps: float | None, rng) -> list[int]:
        if fps is None:
            raise ValueError(f"sampler '{self.name}' needs the video's fps, got None")
        stride = max(1, round(fps / self.target_fps))
        candidates = range(0, num_frames, stride)
        if len(candidates) > self.max_frames:
            return np.linspace(0, num_frames - 1, self.max_frames, dtype=int).tolist()
        return list(candidates)
