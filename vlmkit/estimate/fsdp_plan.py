"""FSDP's bytes per rank from its sharding plan: torch FSDP2 (``fully_shard``) splits every parameter it manages
along dim 0 into world-size chunks, padding dim 0 to a multiple of the world size, so each rank allocates
ceil(rows / N) rows of it; gradients are sharded the same way (in the parameter's dtype) and the optimizer keeps its
moments per shard. Frozen parameters are sharded too unless ``shard_frozen: false`` leaves them whole on every
rank. ``tests/tools/test_fsdp_plan.py`` checks the plan against fully_shard itself on a fake process group."""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class RankBytes:
    """Bytes of the states one rank keeps (``world`` 1: the whole model)."""
    weights: float           # sharded parameters, plus whole frozen ones when they are not sharded
    gradients: float
    optimizer: float
    slack: float             # what padding may add over an even split: one dim-0 row per sharded parameter

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer


def shard_bytes(param: nn.Parameter, world: int) -> int:
    """One rank's (padded) share of ``param``: ceil(rows / world) rows."""
    rows = param.shape[0] if param.dim() else 1
    return math.ceil(rows / world) * (param.numel() // max(rows, 1)) * param.element_size()


def row_bytes(param: nn.Parameter) -> int:
    rows = param.shape[0] if param.dim() else 1
    return param.numel() // max(rows, 1) * param.element_size()


def rank_bytes(model: nn.Module, world: int, optimizer_states: int, shard_frozen: bool = True) -> RankBytes:
    if world < 1:
        raise ValueError(f"world size must be >= 1, got {world}")
    weights = trainable = slack = 0
    for p in model.parameters():
        sharded = p.requires_grad or shard_frozen
        size = shard_bytes(p, world) if sharded else p.numel() * p.element_size()
        weights += size
        if p.requires_grad:
            trainable += size
        if sharded:
            slack += row_bytes(p) * (1 + (optimizer_states + 1 if p.requires_grad else 0))
    return RankBytes(weights=weights, gradients=trainable, optimizer=optimizer_states * trainable, slack=slack)
