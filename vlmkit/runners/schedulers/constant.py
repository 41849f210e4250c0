"""Constant learning rate after an optional linear warm-up (LAVIS ``constant_lr``)."""
from __future__ import annotations

from typing import Optional

import torch

from vlmkit.registry import SCHEDULERS
from vlmkit.runners.schedulers.base import StepScheduler
from vlmkit.schema import NonNegative, Runtime


@SCHEDULERS.register("constant", aliases=["constant_lr"])
class Constant(StepScheduler):
    """init_lr throughout, after warming up from warmup_lr over warmup_steps."""

    def __init__(self, init_lr: NonNegative[float], warmup_lr: Optional[NonNegative[float]] = None,
                 warmup_steps: NonNegative[int] = 0, *,
                 optimizer: Runtime[torch.optim.Optimizer], total_steps: Runtime[int],
                 steps_per_epoch: Runtime[int]):
        super().__init__(optimizer, total_steps, steps_per_epoch, init_lr, warmup_steps, warmup_lr)

    def decayed_lr(self, step: int) -> float:
        return self.init_lr
