"""Adaptive average pooling over (time, height, width) at once (PLLaVA)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vlmkit.models.pooling.grid import grid_side
from vlmkit.models.stage import VisualStage
from vlmkit.registry import POOLERS
from vlmkit.schema import Runtime


@POOLERS.register("adaptive_avg_3d", aliases=["adaptive_3d"])
class AdaptiveAvgPool3dVideo(VisualStage):
    """Pools (T, h, w) token volumes to `pooling_shape` = (T', h', w'); windows overlap when sizes do not divide."""

    def __init__(self, in_dim: Runtime[int], pooling_shape: tuple[int, int, int] = (16, 12, 12)):
        super().__init__()
        if len(pooling_shape) != 3 or min(pooling_shape) < 1:
            raise ValueError(f"adaptive_avg_3d: pooling_shape must be three positive sizes (T', h', w'), "
                             f"got {pooling_shape}")
        self.in_dim = self.out_dim = in_dim
        self.pooling_shape = tuple(int(s) for s in pooling_shape)

    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]:
        grid_side(in_tokens, "adaptive_avg_3d")
        t, h, w = self.pooling_shape
        return t, h * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x, self.in_dim)
        b, t, n, d = x.shape
        side = grid_side(n, "adaptive_avg_3d")
        volume = x.reshape(b, t, side, side, d).permute(0, 4, 1, 2, 3)  # (B, D, T, h, w)
        pooled = F.adaptive_avg_pool3d(volume, self.pooling_shape)
        t2, h2, w2 = self.pooling_shape
        return pooled.permute(0, 2, 3, 4, 1).reshape(b, t2, h2 * w2, d)
