"""Where summary ("beacon") tokens go and which compression ratio each visual window gets (Video-XL).

Pure functions and a small per-sequence state object, so the index formulas can be tested on their own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import cycle
from typing import Iterator, Optional

import numpy as np
import torch

RATIO_MIXES = ("step-random", "instance-random", "sequence", "adapt")


def interleave_layout(input_len: int, ratio: int, remainder: int) -> tuple[torch.Tensor, int]:
    """Beacon mask over the window with beacons inserted, and the remainder carried to the next window.

    ``(input_len + remainder) // ratio`` beacons are inserted; a slot ``i`` of the new sequence holds a beacon
    iff ``i % (ratio + 1) == ratio - remainder``, so with no remainder the pattern is ``v*ratio, B, v*ratio, B,
    ...`` and ``remainder`` raw tokens left over from the previous window shorten the first group.
    """
    if ratio <= 0:
        raise ValueError(f"interleave_layout needs a positive compression ratio, got {ratio}")
    if not 0 <= remainder < ratio:
        raise ValueError(f"the carried remainder must lie in [0, {ratio}), got {remainder}")
    beacons = (input_len + remainder) // ratio
    slots = torch.arange(input_len + beacons)
    mask = slots % (ratio + 1) == ratio - remainder
    if int(mask.sum()) != beacons:  # holds by construction; a failure means the formula was broken
        raise AssertionError(f"interleave formula placed {int(mask.sum())} beacons, expected {beacons}")
    return mask, (input_len + remainder) % ratio


def valid_ratios(ratios: list[int], stride: int, training: bool) -> list[int]:
    """Ratios usable for a window of ``stride`` tokens: r <= stride and r divides it; 0 (keep the window
    uncompressed) only while training, as in the published filter."""
    valid = [r for r in ratios if (r == 0 and training) or (0 < r <= stride and stride % r == 0)]
    if not valid:
        raise ValueError(f"no compression ratio in {ratios} fits a visual window of {stride} tokens (a ratio "
                         f"must divide the window length); make the window a multiple of the tokens per frame "
                         f"and pick ratios dividing the tokens per frame")
    return valid


@dataclass
class RatioSchedule:
    """Chooses the compression ratio of each visual window of one sequence.

    Modes: 'step-random' (a new random ratio per window), 'instance-random' (one per sequence), 'sequence'
    (cycle through the list), 'adapt' (the smallest ratio whose longest reachable context
    ``(max_positions - window) * r + window`` covers the sequence plus ``adapt_margin``). A one-element list is
    used as is, without filtering (the published inference override, e.g. [16]).
    """

    ratios: list[int]
    mix: str
    rng: np.random.Generator
    window: int
    max_positions: int
    sequence_length: int
    adapt_margin: int = 0
    training: bool = False
    _fixed: Optional[int] = None
    _cycle: Optional[Iterator[int]] = field(default=None, repr=False)

    def next(self, stride: int) -> int:
        if len(self.ratios) == 1:
            return self.ratios[0]
        candidates = valid_ratios(self.ratios, stride, self.training)
        if self.mix == "step-random":
            return int(self.rng.choice(candidates))
        if self.mix == "sequence":
            if self._cycle is None:
                self._cycle = cycle(candidates)
            return int(next(self._cycle))
        if self._fixed is None:
            self._fixed = (int(self.rng.choice(candidates)) if self.mix == "instance-random"
                           else self._adapted(candidates))
        return self._fixed

    def _adapted(self, candidates: list[int]) -> int:
        needed = self.sequence_length + self.adapt_margin
        reach = {r: (self.max_positions - self.window) * r + self.window if r > 0 else self.max_positions
                 for r in candidates}
        fitting = [r for r in candidates if reach[r] >= needed]
        return min(fitting, key=reach.__getitem__) if fitting else max(candidates)
