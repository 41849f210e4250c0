"""Fixed-window average pooling of each frame's token grid (Video-XL's avg_pool2d(2))."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from vlmkit.models.pooling.grid import from_grid, grid_side, to_grid
from vlmkit.models.stage import VisualStage
from vlmkit.registry import POOLERS
from vlmkit.schema import Runtime


@POOLERS.register("avg_pool_2d", aliases=["stride_2d"])
class StridePool2dFrames(VisualStage):
    """Average pooling with a `kernel` x `kernel` window moved by `stride` (default: the kernel) over each frame."""

    def __init__(self, in_dim: Runtime[int], kernel: int = 2, stride: Optional[int] = None):
        super().__init__()
        if kernel < 1 or (stride is not None and stride < 1):
            raise ValueError(f"avg_pool_2d: kernel and stride must be >= 1, got kernel={kernel}, stride={stride}")
        self.in_dim = self.out_dim = in_dim
        self.kernel, self.stride = kernel, stride or kernel

    def output_side(self, side: int) -> int:
        if side < self.kernel:
            raise ValueError(f"avg_pool_2d: a {self.kernel}x{self.kernel} window does not fit a {side}x{side} grid")
        return (side - self.kernel) // self.stride + 1

    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]:
        return in_frames, self.output_side(grid_side(in_tokens, "avg_pool_2d")) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x, self.in_dim)
        side = grid_side(x.shape[2], "avg_pool_2d")
        self.output_side(side)
        return from_grid(F.avg_pool2d(to_grid(x, side), self.kernel, self.stride), x.shape[0])
