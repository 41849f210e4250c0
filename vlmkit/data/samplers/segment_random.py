"""Training rule: one random frame inside each of ``num_frames`` equal segments."""
from __future__ import annotations

from vlmkit.data.samplers.base import FrameSampler, as_generator, check_count, segment_edges
from vlmkit.registry import SAMPLERS


@SAMPLERS.register("segment_random", aliases=["rand"])
class SegmentRandomSampler(FrameSampler):
    """Segments ``linspace(0, n, k+1).astype(int)`` (PLLaVA/VideoChat2 "rand"); any frame of a segment, ends
    included.  A segment left empty by a video shorter than ``num_frames`` takes its start frame (repeats)."""

    name = "segment_random"

    def __init__(self, num_frames: int = 16):
        self.num_frames = self.max_frames = check_count(num_frames, "num_frames", self.name)

    def indices(self, num_frames: int, fps: float | None, rng) -> list[int]:
        generator = as_generator(rng, self.name)
        edges = segment_edges(num_frames, self.num_frames)
        lows = edges[:-1]
        highs = [max(int(hi), int(lo) + 1) for lo, hi in zip(edges[:-1], edges[1:])]  # exclusive
        return [int(generator.integers(lo, hi)) for lo, hi in zip(lows, highs)]

    def eval_counterpart(self):
        """Evaluation takes the middle of the same segments."""
        from vlmkit.data.samplers.segment_middle import SegmentMiddleSampler

        return SegmentMiddleSampler(self.num_frames, rule="interval")
