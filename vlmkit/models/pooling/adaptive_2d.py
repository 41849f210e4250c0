"""Adaptive average pooling of each frame's token grid (VideoGPT+ and its pool-level fork)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from vlmkit.models.pooling.grid import from_grid, grid_side, to_grid
from vlmkit.models.stage import VisualStage
from vlmkit.registry import POOLERS
from vlmkit.schema import Runtime


def pool_level_side(side: int, pool_level: int) -> int:
    """The fork's grid rule: 1 if side/p < 1 else round(side/p), with Python's round-half-to-even."""
    return 1 if side / pool_level < 1 else round(side / pool_level)


@POOLERS.register("adaptive_avg_2d", aliases=["adaptive_2d"])
class AdaptiveAvgPool2dFrames(VisualStage):
    """Per-frame adaptive average pooling to a grid set by `grid` or by a pool level `pool_level`."""

    def __init__(self, in_dim: Runtime[int], pool_level: Optional[int] = None, grid: Optional[int] = None):
        super().__init__()
        if (pool_level is None) == (grid is None):
            raise ValueError("adaptive_avg_2d needs exactly one of 'pool_level' (grid side = round(side / p)) "
                             f"or 'grid' (an explicit side); got pool_level={pool_level}, grid={grid}")
        for key, value in (("pool_level", pool_level), ("grid", grid)):
            if value is not None and value < 1:
                raise ValueError(f"adaptive_avg_2d: {key} must be >= 1, got {value}")
        self.in_dim = self.out_dim = in_dim
        self.pool_level, self.grid = pool_level, grid

    def output_side(self, side: int) -> int:
        return self.grid if self.grid is not None else pool_level_side(side, self.pool_level)

    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]:
        return in_frames, self.output_side(grid_side(in_tokens, "adaptive_avg_2d")) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x, self.in_dim)
        side = grid_side(x.shape[2], "adaptive_avg_2d")
        pooled = F.adaptive_avg_pool2d(to_grid(x, side), self.output_side(side))
        return from_grid(pooled, x.shape[0])
