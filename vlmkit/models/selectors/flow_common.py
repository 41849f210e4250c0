"""Flow estimators share one contract: frames (B, T, 3, H, W) in [0, 1] -> flow (B, T, 2, H, W) between
consecutive frames, the last flow repeated so there is one per frame (as VideoTGB's evaluation does)."""
from __future__ import annotations

import torch
from torch import nn


class FlowEstimator(nn.Module):
    """Base class; subclasses implement ``pairwise(first, second)`` on (N, 3, H, W) batches of frame pairs."""

    def pairwise(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement pairwise(first, second)")

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"a flow estimator reads frames (B, T, 3, H, W) in [0, 1], got {tuple(frames.shape)}")
        batch, time = frames.shape[:2]
        if time < 2:
            raise ValueError(f"optical flow needs at least 2 frames per video, got {time}")
        flow = self.pairwise(frames[:, :-1].flatten(0, 1), frames[:, 1:].flatten(0, 1)).unflatten(0, (batch, time - 1))
        return torch.cat([flow, flow[:, -1:]], dim=1)
