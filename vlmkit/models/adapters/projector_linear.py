"""Linear projector into the LLM's embedding width (BLIP-2's language_projection, Video-LLaMA's llama_proj)."""
from __future__ import annotations

import torch
from torch import nn

from vlmkit.models.stage import DType, VisualStage, resolve_dtype
from vlmkit.registry import ADAPTERS
from vlmkit.schema import Runtime


@ADAPTERS.register("linear", aliases=["linear_projector"])
class LinearProjector(VisualStage):
    """``(B, T, N, in_dim) -> (B, T, N, out_dim)`` with one nn.Linear; out_dim is the LLM hidden size."""

    def __init__(self, in_dim: Runtime[int], out_dim: Runtime[int], bias: bool = True, freeze: bool = False,
                 dtype: DType = "float32") -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.proj = nn.Linear(in_dim, out_dim, bias=bias, dtype=resolve_dtype(dtype))
        if freeze:
            self.freeze()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x, self.in_dim)
        return self.proj(x.to(self.proj.weight.dtype))
