"""Projectors: linear, mlp{N}x_gelu (LLaVA layout), identity; runtime widths; shape errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vlmkit.errors import ConfigError
from vlmkit.registry import ADAPTERS


def build(cfg, in_dim=8, out_dim=16):
    return ADAPTERS.build(cfg, in_dim=in_dim, out_dim=out_dim)


def test_registered():
    assert {"linear", "mlp_gelu", "identity", "llava_projector"} <= set(ADAPTERS.names())


@pytest.mark.parametrize("cfg", [{"name": "linear"}, {"name": "mlp_gelu", "depth": 3},
                                 {"name": "llava_projector", "projector_type": "mlp2x_gelu"}])
def test_shapes_and_out_dim(cfg):
    projector = build(cfg)
    out = projector(torch.randn(2, 3, 5, 8))
    assert out.shape == (2, 3, 5, 16) and projector.out_dim == 16
    assert projector.out_tokens(in_tokens=5, in_frames=3) == (3, 5)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_mlp_nx_gelu_layout(depth):
    projector = build({"name": "llava_projector", "projector_type": f"mlp{depth}x_gelu"})
    kinds = [type(m) for m in projector.layers]
    assert kinds == [nn.Linear] + [nn.GELU, nn.Linear] * (depth - 1)
    assert projector.layers[0].in_features == 8
    assert all(m.out_features == 16 for m in projector.layers if isinstance(m, nn.Linear))


def test_mlp2x_gelu_computes_linear_gelu_linear():
    projector = build({"name": "mlp_gelu"})
    x = torch.randn(1, 2, 3, 8)
    first, second = projector.layers[0], projector.layers[2]
    torch.testing.assert_close(projector(x), second(nn.functional.gelu(first(x))))


def test_identity():
    projector = ADAPTERS.build({"name": "identity"}, in_dim=8, out_dim=8)
    x = torch.randn(1, 2, 3, 8)
    assert projector(x) is x and projector.out_dim == 8
    assert build({"name": "llava_projector", "projector_type": "identity"}, out_dim=8).out_dim == 8
    with pytest.raises(ConfigError, match="cannot map width 8 to 16"):
        build({"name": "identity"})


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown projector_type 'mlp2x_relu'"):
        build({"name": "llava_projector", "projector_type": "mlp2x_relu"})
    with pytest.raises(ConfigError, match="depth must be >= 1"):
        build({"name": "mlp_gelu", "depth": 0})
    with pytest.raises(ConfigError, match="supplied by vlmkit"):
        ADAPTERS.build({"name": "linear", "out_dim": 16}, in_dim=8)


def test_wrong_input_width_raises_clearly():
    with pytest.raises(ValueError, match="built for input width D=8 .* got width 9"):
        build({"name": "linear"})(torch.randn(1, 1, 2, 9))


def test_freeze_and_dtype():
    projector = build({"name": "mlp_gelu", "freeze": True, "dtype": "bfloat16"})
    assert not any(p.requires_grad for p in projector.parameters())
    assert all(p.dtype == torch.bfloat16 for p in projector.parameters())
    assert projector(torch.randn(1, 1, 2, 8)).dtype == torch.bfloat16
