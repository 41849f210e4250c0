"""The frame-sampler interface: (frames in the video or bounded range, fps, rng) -> frame indices."""
from __future__ import annotations

import numpy as np


def as_generator(rng: np.random.Generator | int | None, sampler: str) -> np.random.Generator:
    """Random samplers need an explicit generator or seed, so a run is reproducible and resumable."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"sampler '{sampler}' draws random frames: pass rng= a numpy Generator or an int seed "
                     f"(got {rng!r})")


class FrameSampler:
    """Base class: validates the request, then ``indices`` computes sorted frame indices in 0..num_frames-1.

    ``max_frames`` is the largest count the sampler returns, for token budgets and preflight checks.
    When the video is shorter than the requested count, deterministic rules repeat frames rather than
    inventing blank ones.
    """

    name = "sampler"
    max_frames: int

    def __call__(self, num_frames: int, fps: float | None = None,
                 rng: np.random.Generator | int | None = None) -> list[int]:
        if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
            raise ValueError(f"sampler '{self.name}': the video must have at least one frame, got {num_frames!r}")
        if fps is not None and not fps > 0:
            raise ValueError(f"sampler '{self.name}': fps must be positive, got {fps!r}")
        indices = [int(i) for i in self.indices(int(num_frames), fps, rng)]
        assert all(0 <= i < num_frames for i in indices), (self.name, num_frames, indices)
        return indices

    def indices(self, num_frames: int, fps: float | None, rng) -> list[int]:
        raise NotImplementedError(f"{type(self).__name__} must implement indices()")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def check_count(value: int, key: str, sampler: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"sampler '{sampler}': {key} must be a positive integer, got {value!r}")
    return value


def segment_edges(num_frames: int, count: int) -> np.ndarray:
    """``count`` equal segments of [0, num_frames): edges ``linspace(0, n, count+1)`` truncated (PLLaVA)."""
    return np.linspace(0, num_frames, count + 1).astype(int)
