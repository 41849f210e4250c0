"""Shared helpers for poolers that treat a frame's tokens as a square grid."""
from __future__ import annotations

import math

import torch


def grid_side(tokens: int, who: str) -> int:
    """Side of the square grid of ``tokens`` patch tokens; a non-square count is an error (a CLS token left in?)."""
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"{who} needs a square grid of tokens per frame, got N={tokens} "
                         f"(drop the CLS token in the encoder: 577 -> 576 = 24x24)")
    return side


def to_grid(x: torch.Tensor, side: int) -> torch.Tensor:
    """(B, T, N, D) -> (B*T, D, side, side)."""
    b, t, n, d = x.shape
    return x.reshape(b * t, side, side, d).permute(0, 3, 1, 2)


def from_grid(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*T, D, h, w) -> (B, T, h*w, D)."""
    bt, d, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, bt // batch, h * w, d)
