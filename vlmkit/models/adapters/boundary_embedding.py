"""LLMVA-GEBC's boundary embedding: per-sample reference points -> one vector added to every query token.

The reference points (GEBC: boundary time / duration and boundary span / duration, both in [0, 1]) go
through ``sigmoid(p) * 2 pi`` (the sigmoid is applied to values already in [0, 1], as in the original),
a DETR-style sine/cosine embedding with temperature 10000 (``hidden / num_points`` features per point,
interleaved sin/cos), then Linear(hidden, hidden) and LayerNorm.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from vlmkit.errors import ConfigError, DataError


class BoundaryEmbedding(nn.Module):
    """``(B, num_points)`` reference points -> ``(B, 1, hidden)``."""

    def __init__(self, hidden: int, num_points: int = 2, temperature: float = 10000.0) -> None:
        super().__init__()
        features = hidden // num_points if num_points > 0 else 0
        if num_points < 1 or features * num_points != hidden or features % 2:
            raise ConfigError("boundary embedding", f"hidden size {hidden} must split into {num_points} even "
                                                    f"parts (one sin/cos block per reference point)")
        self.num_points = num_points
        self.features = features
        self.temperature = temperature
        self.proj = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)

    def sine(self, points: torch.Tensor) -> torch.Tensor:
        """The fixed sine/cosine part, ``(B, num_points) -> (B, 1, hidden)``."""
        if points.dim() != 2 or points.shape[1] != self.num_points:
            raise DataError(f"reference points must be (B, {self.num_points}), got shape {tuple(points.shape)}")
        index = torch.arange(self.features, dtype=torch.float32, device=points.device)
        dim_t = self.temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / self.features)
        pos = (points.float().sigmoid() * 2 * math.pi)[:, :, None] / dim_t
        pos = torch.stack((pos[:, :, 0::2].sin(), pos[:, :, 1::2].cos()), dim=3).flatten(2)
        return pos.reshape(points.shape[0], 1, -1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        sine = self.sine(points).to(self.proj.weight.dtype)
        return self.norm(self.proj(sine))
