"""Precomputed features read from the batch instead of pixels (LLMVA-GEBC's offline features).

Each configured batch key holds one feature sequence per sample: a tensor ``(B, T, N, D)`` or ``(B, T, D)``
(N = 1), or a list of B tensors ``(T_i, [N,] D)`` whose lengths may differ. With ``max_seq_len`` every
sequence is resized along time to that length by nearest-neighbour index (GEBC's ``interp1d(kind='nearest')``
over the other features); the keys are then concatenated on the width axis -> ``(B, T, N, sum(dims))``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional

import torch

from vlmkit.errors import ConfigError
from vlmkit.models.stage import VisualStage
from vlmkit.registry import ENCODERS


def nearest_indices(length: int, target: int) -> torch.Tensor:
    """Indices that resample ``length`` steps to ``target`` steps by nearest neighbour.

    Target step j sits at ``j * (length - 1) / (target - 1)`` of the source (both ends kept); ties go to
    the lower index, as scipy's ``interp1d(kind='nearest')`` does.
    """
    if length < 1 or target < 1:
        raise ValueError(f"cannot resample a sequence of {length} steps to {target}")
    if target == 1 or length == 1:
        return torch.zeros(target, dtype=torch.long)
    positions = [j * (length - 1) / (target - 1) for j in range(target)]
    return torch.tensor([min(max(math.ceil(p - 0.5), 0), length - 1) for p in positions], dtype=torch.long)


def nearest_resize(sequence: torch.Tensor, target: int) -> torch.Tensor:
    """``(T, ...)`` -> ``(target, ...)`` by nearest-neighbour resampling along the first axis."""
    return sequence.index_select(0, nearest_indices(sequence.shape[0], target).to(sequence.device))


@ENCODERS.register("precomputed_features", aliases=["features"])
class PrecomputedFeatures(VisualStage):
    """Features from the batch under ``keys`` -> ``(B, T, N, sum(dims))``; no weights, nothing to train."""

    reads_pixels = False

    def __init__(self, keys: list[str], dims: list[int], tokens_per_frame: int = 1,
                 max_seq_len: Optional[int] = None) -> None:
        super().__init__()
        if not keys or len(keys) != len(dims):
            raise ConfigError("precomputed_features", f"give one width per key: keys {keys} and dims {dims}")
        if tokens_per_frame < 1 or (max_seq_len is not None and max_seq_len < 1):
            raise ConfigError("precomputed_features", f"tokens_per_frame ({tokens_per_frame}) and max_seq_len "
                                                      f"({max_seq_len}) must be >= 1")
        self.batch_keys = tuple(keys)
        self.dims = tuple(dims)
        self.tokens_per_frame = tokens_per_frame
        self.max_seq_len = max_seq_len
        self.out_dim = sum(dims)

    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]:
        """Resized sequences have ``max_seq_len`` steps; otherwise one step per sampled frame."""
        return (self.max_seq_len or in_frames), self.tokens_per_frame

    def _as_samples(self, key: str, value: Any, dim: int) -> list[torch.Tensor]:
        rows = list(value.unbind(0)) if isinstance(value, torch.Tensor) else list(value)
        samples = []
        for i, row in enumerate(rows):
            row = torch.as_tensor(row)
            if row.dim() == 2 and self.tokens_per_frame == 1:
                row = row.unsqueeze(1)
            if row.dim() != 3 or tuple(row.shape[1:]) != (self.tokens_per_frame, dim):
                raise ValueError(f"precomputed feature '{key}' of sample {i} has shape {tuple(row.shape)}; expected "
                                 f"(T, {self.tokens_per_frame}, {dim})"
                                 + (f" or (T, {dim})" if self.tokens_per_frame == 1 else ""))
            samples.append(nearest_resize(row, self.max_seq_len) if self.max_seq_len else row)
        return samples

    def forward(self, features: Mapping[str, Any]) -> torch.Tensor:
        per_key = [self._as_samples(key, features[key], dim) for key, dim in zip(self.batch_keys, self.dims)]
        batch = {len(samples) for samples in per_key}
        if len(batch) != 1:
            raise ValueError(f"precomputed features {list(self.batch_keys)} disagree on the batch size: "
                             f"{[len(s) for s in per_key]}")
        steps = {s.shape[0] for samples in per_key for s in samples}
        if len(steps) != 1:
            raise ValueError(f"precomputed features {list(self.batch_keys)} have different lengths {sorted(steps)}; "
                             f"set max_seq_len to resize them to one length")
        stacked = [torch.stack(samples) for samples in per_key]
        dtype = stacked[0].dtype if stacked[0].is_floating_point() else torch.float32
        return torch.cat([s.to(dtype) for s in stacked], dim=-1)
