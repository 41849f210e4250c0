"""Uniform frame selection: the midpoints of K equal bins of the decoded frames (the no-selector baseline)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from vlmkit.models.selectors.base import FrameSelector, Selection
from vlmkit.models.selectors.spans import reduce_to
from vlmkit.registry import SELECTORS
from vlmkit.schema import Runtime


@SELECTORS.register("uniform", aliases=["uniform_selector"])
class UniformSelector(FrameSelector):
    """The same K evenly spread frames for every video; no weights, no loss."""

    def __init__(self, num_selected: int = 4, *, num_frames: Runtime[int]):
        super().__init__(num_selected, num_frames)
        self.register_buffer("picks", torch.tensor(reduce_to(range(num_frames), num_selected)), persistent=False)

    def forward(self, pixels: Sequence[torch.Tensor], inputs: Mapping[str, Any]) -> Selection:
        batch = pixels[0].shape[0]
        return Selection(self.picks.to(pixels[0].device).expand(batch, -1))
