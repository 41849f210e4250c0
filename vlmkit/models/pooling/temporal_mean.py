"""Mean over frames: one frame's worth of tokens per video."""
from __future__ import annotations

import torch

from vlmkit.models.stage import VisualStage
from vlmkit.registry import POOLERS
from vlmkit.schema import Runtime


@POOLERS.register("temporal_mean")
class TemporalMean(VisualStage):
    """Averages the tokens of all frames position by position: (B, T, N, D) -> (B, 1, N, D)."""

    def __init__(self, in_dim: Runtime[int]):
        super().__init__()
        self.in_dim = self.out_dim = in_dim

    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]:
        return 1, in_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x, self.in_dim)
        return x.mean(dim=1, keepdim=True)
