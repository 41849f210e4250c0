"""Identity projector, for features that already have the LLM's width."""
from __future__ import annotations

from typing import Optional

import torch

from vlmkit.errors import ConfigError
from vlmkit.models.stage import VisualStage
from vlmkit.registry import ADAPTERS
from vlmkit.schema import Runtime


@ADAPTERS.register("identity", aliases=["identity_projector"])
class IdentityProjector(VisualStage):
    """Passes ``(B, T, N, D)`` through; building it between different widths is an error, not a silent pass."""

    def __init__(self, in_dim: Runtime[int], out_dim: Runtime[Optional[int]] = None) -> None:
        super().__init__()
        if out_dim is not None and out_dim != in_dim:
            raise ConfigError("identity", f"identity projector cannot map width {in_dim} to {out_dim}; use "
                                          f"'linear' or 'mlp_gelu' (or 'llava_projector' with mlp2x_gelu)")
        self.in_dim = in_dim
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x, self.in_dim)
        return x
