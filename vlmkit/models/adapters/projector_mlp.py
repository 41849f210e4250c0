"""LLaVA's ``mlp{N}x_gelu`` projector: Linear(in, out), then (GELU, Linear(out, out)) x (N - 1)."""
from __future__ import annotations

import torch
from torch import nn

from vlmkit.errors import ConfigError
from vlmkit.models.stage import DType, VisualStage, resolve_dtype
from vlmkit.registry import ADAPTERS
from vlmkit.schema import Runtime


@ADAPTERS.register("mlp_gelu", aliases=["mlp_projector"])
class MLPGeluProjector(VisualStage):
    """``depth`` linear layers with GELU between them; out_dim (the LLM hidden size) is also the hidden width."""

    def __init__(self, in_dim: Runtime[int], out_dim: Runtime[int], depth: int = 2, freeze: bool = False,
                 dtype: DType = "float32") -> None:
        super().__init__()
        if depth < 1:
            raise ConfigError("mlp_gelu.depth", f"depth must be >= 1 (mlp1x_gelu is a single Linear), got {depth}")
        torch_dtype = resolve_dtype(dtype)
        self.in_dim = in_dim
        self.out_dim = out_dim
        layers: list[nn.Module] = [nn.Linear(in_dim, out_dim, dtype=torch_dtype)]
        for _ in range(depth - 1):
            layers += [nn.GELU(), nn.Linear(out_dim, out_dim, dtype=torch_dtype)]
        self.layers = nn.Sequential(*layers)  # indices 0, 2, 4... as in LLaVA's mm_projector
        if freeze:
            self.freeze()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x, self.in_dim)
        return self.layers(x.to(self.layers[0].weight.dtype))
