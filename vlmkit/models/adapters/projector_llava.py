"""Projector chosen by a LLaVA-style type string (``mm_projector_type``): linear, mlp{N}x_gelu, identity.

Lets configs ported from LLaVA-family code keep their value verbatim, for any N.
"""
from __future__ import annotations

import re

from vlmkit.errors import ConfigError
from vlmkit.models.adapters.projector_identity import IdentityProjector
from vlmkit.models.adapters.projector_linear import LinearProjector
from vlmkit.models.adapters.projector_mlp import MLPGeluProjector
from vlmkit.models.stage import DType, VisualStage
from vlmkit.registry import ADAPTERS
from vlmkit.schema import Runtime

_MLP = re.compile(r"^mlp(\d+)x_gelu$")


@ADAPTERS.register("llava_projector")
def llava_projector(in_dim: Runtime[int], out_dim: Runtime[int], projector_type: str = "mlp2x_gelu",
                    freeze: bool = False, dtype: DType = "float32") -> VisualStage:
    """A projector from its LLaVA name: 'linear', 'mlp{N}x_gelu' (N >= 1) or 'identity'."""
    if projector_type == "linear":
        return LinearProjector(in_dim, out_dim, freeze=freeze, dtype=dtype)
    if projector_type == "identity":
        return IdentityProjector(in_dim, out_dim)
    match = _MLP.match(projector_type)
    if match:
        return MLPGeluProjector(in_dim, out_dim, depth=int(match.group(1)), freeze=freeze, dtype=dtype)
    raise ConfigError("llava_projector.projector_type",
                      f"unknown projector_type '{projector_type}'; accepted: linear, identity, mlp{{N}}x_gelu "
                      f"(e.g. mlp2x_gelu)")
