"""Linear map of precomputed features to a chosen width (LLMVA-GEBC's ``other_feat_linear``, 3072 -> 768).

Unlike the ``linear`` projector, whose output is always the LLM's width, this one ends at ``width``, so a
Q-Former can follow it.
"""
from __future__ import annotations

import torch
from torch import nn

from vlmkit.models.stage import DType, VisualStage, resolve_dtype
from vlmkit.registry import ADAPTERS
from vlmkit.schema import Runtime


@ADAPTERS.register("feature_projection")
class FeatureProjection(VisualStage):
    """``(B, T, N, in_dim) -> (B, T, N, width)`` with one nn.Linear."""

    def __init__(self, in_dim: Runtime[int], width: int, bias: bool = True, freeze: bool = False,
                 dtype: DType = "float32") -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = width
        self.proj = nn.Linear(in_dim, width, bias=bias, dtype=resolve_dtype(dtype))
        if freeze:
            self.freeze()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x, self.in_dim)
        return self.proj(x.to(self.proj.weight.dtype))
