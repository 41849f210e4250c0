"""Linear warm-up, then cosine decay from init_lr to min_lr (LAVIS ``linear_warmup_cosine_lr``)."""
from __future__ import annotations

import math
from typing import Literal, Optional

import torch

from vlmkit.registry import SCHEDULERS
from vlmkit.runners.schedulers.base import StepScheduler
from vlmkit.schema import NonNegative, Runtime


@SCHEDULERS.register("linear_warmup_cosine", aliases=["linear_warmup_cosine_lr", "cosine"])
class LinearWarmupCosine(StepScheduler):
    """Warm up linearly from warmup_lr (default 0) to init_lr, then follow a cosine down to min_lr at the last step.

    ``granularity: epoch`` reproduces LAVIS exactly (the cosine advances once per epoch, counted from the
    first epoch); ``step`` (default) decays smoothly over the optimizer steps after warm-up.
    """

    def __init__(self, init_lr: NonNegative[float], min_lr: NonNegative[float] = 0.0,
                 warmup_lr: Optional[NonNegative[float]] = None,
                 warmup_steps: NonNegative[int] = 0, granularity: Literal["step", "epoch"] = "step", *,
                 optimizer: Runtime[torch.optim.Optimizer], total_steps: Runtime[int],
                 steps_per_epoch: Runtime[int]):
        self.min_lr = min_lr
        self.granularity = granularity
        super().__init__(optimizer, total_steps, steps_per_epoch, init_lr, warmup_steps, warmup_lr)

    def decayed_lr(self, step: int) -> float:
        if self.granularity == "epoch":
            epochs = max(math.ceil(self.total_steps / self.steps_per_epoch), 1)
            progress = (step // self.steps_per_epoch) / epochs
        else:
            progress = (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1)
        return self.min_lr + (self.init_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
