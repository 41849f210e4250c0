"""Linear warm-up, then exponential decay once per epoch (LAVIS ``linear_warmup_step_lr``)."""
from __future__ import annotations

from typing import Optional

import torch

from vlmkit.registry import SCHEDULERS
from vlmkit.runners.schedulers.base import StepScheduler
from vlmkit.schema import NonNegative, Positive, Runtime


@SCHEDULERS.register("linear_warmup_step", aliases=["linear_warmup_step_lr", "step"])
class LinearWarmupStep(StepScheduler):
    """lr = max(min_lr, init_lr * decay_rate ** k), k = epoch (or ``every_steps`` block) index."""

    def __init__(self, init_lr: NonNegative[float], decay_rate: Positive[float] = 0.9, min_lr: NonNegative[float] = 0.0,
                 warmup_lr: Optional[NonNegative[float]] = None, warmup_steps: NonNegative[int] = 0,
                 every_steps: Optional[Positive[int]] = None, *,
                 optimizer: Runtime[torch.optim.Optimizer], total_steps: Runtime[int],
                 steps_per_epoch: Runtime[int]):
        self.decay_rate = decay_rate
        self.min_lr = min_lr
        self.every_steps = every_steps
        super().__init__(optimizer, total_steps, steps_per_epoch, init_lr, warmup_steps, warmup_lr)

    def decayed_lr(self, step: int) -> float:
        period = self.every_steps or self.steps_per_epoch
        return max(self.min_lr, self.init_lr * self.decay_rate ** (step // period))
