"""RAFT optical flow (torchvision's architecture) with weights from a local file only, never downloaded.

torchvision's ``raft_small`` / ``raft_large`` are built with ``weights=None`` and loaded from ``weights`` (a
state dict saved from torchvision's own RAFT, e.g. ``torch.save(raft_large(weights=...).state_dict(), path)``
on a machine with internet). VideoTGB used the original RAFT repo's ``raft-sintel.pth``; its key names differ
from torchvision's, so convert it first. Frames are padded to a multiple of 8 as RAFT requires.
"""
from __future__ import annotations

import os
from typing import Literal

import torch
import torch.nn.functional as F

from vlmkit.errors import ConfigError
from vlmkit.models.selectors.flow_common import FlowEstimator
from vlmkit.registry import SELECTORS


@SELECTORS.register("raft_flow", aliases=["raft"])
class RAFTFlow(FlowEstimator):
    """torchvision RAFT (``arch``: small / large), frozen, ``num_flow_updates`` refinement iterations."""

    def __init__(self, weights: str, arch: Literal["small", "large"] = "large", num_flow_updates: int = 12):
        super().__init__()
        try:
            from torchvision.models import optical_flow
        except ImportError as err:
            raise ConfigError("raft_flow", "needs torchvision (pip install torchvision)") from err
        if not os.path.isfile(weights):
            raise ConfigError("raft_flow.weights", f"RAFT weights file not found: {weights!r}; weights are only "
                                                   f"read from a local file (a torchvision RAFT state dict)")
        self.model = (optical_flow.raft_small if arch == "small" else optical_flow.raft_large)(weights=None)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        try:
            self.model.load_state_dict(state)
        except RuntimeError as err:  # missing / unexpected keys or shapes of another RAFT
            raise ConfigError("raft_flow.weights", f"{weights} is not a torchvision raft_{arch} state dict: "
                                                   f"{str(err)[:300]}") from err
        self.num_flow_updates = num_flow_updates
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "RAFTFlow":
        return super().train(False)  # always inference (batch norm statistics stay fixed)

    def pairwise(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        height, width = first.shape[-2:]
        pad = (0, (-width) % 8, 0, (-height) % 8)
        first, second = (F.pad(x * 2 - 1, pad, mode="replicate") for x in (first, second))  # RAFT reads [-1, 1]
        flow = self.model(first, second, num_flow_updates=self.num_flow_updates)[-1]
        return flow[..., :height, :width]
