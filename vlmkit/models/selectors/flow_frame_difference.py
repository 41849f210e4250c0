"""A cheap STAND-IN for optical flow, for tests and CPU demos: normal flow from brightness constancy.

Not optical flow: per pixel it is the motion component along the image gradient,
``-I_t * grad(I) / (|grad(I)|^2 + eps)``, from the grey frames' temporal difference and spatial gradients.
It moves where things move, which is all the sampler's tests need; real runs use ``raft_flow`` or
precomputed RAFT ``.npy`` files.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vlmkit.models.selectors.flow_common import FlowEstimator
from vlmkit.registry import SELECTORS


@SELECTORS.register("frame_difference_flow_standin", aliases=["normal_flow_standin"])
class FrameDifferenceFlowStandIn(FlowEstimator):
    """Normal flow from frame differences (a stand-in for RAFT, clearly not it); ``eps`` damps flat regions."""

    def __init__(self, eps: float = 1e-2):
        super().__init__()
        self.eps = eps
        kernel = torch.tensor([[-0.5, 0.0, 0.5]])
        self.register_buffer("dx", kernel.view(1, 1, 1, 3), persistent=False)
        self.register_buffer("dy", kernel.view(1, 1, 3, 1), persistent=False)

    def pairwise(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        grey_a, grey_b = first.mean(1, keepdim=True), second.mean(1, keepdim=True)
        mean = (grey_a + grey_b) / 2
        ix = F.conv2d(F.pad(mean, (1, 1, 0, 0), mode="replicate"), self.dx.to(mean.dtype))
        iy = F.conv2d(F.pad(mean, (0, 0, 1, 1), mode="replicate"), self.dy.to(mean.dtype))
        it = grey_b - grey_a
        scale = -it / (ix ** 2 + iy ** 2 + self.eps)
        return torch.cat([scale * ix, scale * iy], dim=1)
