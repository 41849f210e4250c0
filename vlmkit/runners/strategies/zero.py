"""DDP with the optimizer state sharded across ranks (torch's ZeroRedundancyOptimizer, ZeRO stage 1)."""
from __future__ import annotations

from typing import Any

import torch
from torch.distributed.optim import ZeroRedundancyOptimizer

from vlmkit.registry import STRATEGIES
from vlmkit.runners.strategies.ddp import DDP


@STRATEGIES.register("zero", aliases=["zero1", "sharded_optimizer"])
class ZeroDDP(DDP):
    """Each rank keeps the optimizer state of its share of the parameters; checkpoints consolidate it."""

    def create_optimizer(self, spec: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
        groups = spec.param_groups(self.trainable_parameters(model))
        if not self.env.distributed:
            return spec.create(groups)
        return ZeroRedundancyOptimizer(groups, optimizer_class=spec.torch_class, lr=0.0, **spec.kwargs)

    def optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        if isinstance(optimizer, ZeroRedundancyOptimizer):
            optimizer.consolidate_state_dict(to=0)  # collective: every rank must call it
            return optimizer.state_dict() if self.env.is_main else {}
        return optimizer.state_dict()
