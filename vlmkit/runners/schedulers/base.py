"""Learning-rate schedules as pure functions of the optimizer step (so resume restores them exactly).

Every scheduler sets ``group['lr'] = base_lr(step) * group.get('lr_scale', 1.0)`` for each parameter group,
so per-component scales (a 10x projector rate) and layer-wise scales survive every schedule.
LAVIS's names are kept: ``init_lr`` (peak), ``min_lr`` (floor), ``warmup_lr`` (the lr of step 0, LAVIS's
``warmup_start_lr``; default 0, the ramp of transformers' ``get_*_schedule_with_warmup`` that the HF-Trainer
recipes use) and ``warmup_steps`` (optimizer steps). A warm-up never is a silent no-op: ``warmup_steps > 0`` with
``warmup_lr`` equal to ``init_lr`` is an error.
"""
from __future__ import annotations

from typing import Optional

import torch

from vlmkit.errors import ConfigError


class StepScheduler:
    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int,
                 init_lr: float, warmup_steps: int = 0, warmup_lr: Optional[float] = None):
        if warmup_steps < 0:
            raise ConfigError("run.scheduler.warmup_steps", f"must be >= 0, got {warmup_steps}")
        self.optimizer = optimizer
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.init_lr = init_lr
        self.warmup_steps = warmup_steps
        self.warmup_lr = 0.0 if warmup_lr is None else warmup_lr
        if warmup_steps > 0 and self.warmup_lr == init_lr:
            raise ConfigError("run.scheduler.warmup_lr", f"equals init_lr ({init_lr}), so the {warmup_steps} "
                                                         f"warm-up steps would be flat; leave warmup_lr unset to "
                                                         f"ramp from 0, set a lower one, or set warmup_steps: 0")
        self.step_index = 0
        self.set_step(0)

    def warmup_value(self, step: int) -> float:
        """Linear ramp from warmup_lr (step 0) to init_lr (step warmup_steps)."""
        return self.warmup_lr + (self.init_lr - self.warmup_lr) * step / max(self.warmup_steps, 1)

    def base_lr(self, step: int) -> float:
        """The unscaled learning rate of optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.warmup_value(step)
        return self.decayed_lr(step)

    def decayed_lr(self, step: int) -> float:
        raise NotImplementedError

    def set_step(self, step: int) -> None:
        """Set every group's lr for the optimizer step about to run."""
        self.step_index = step
        lr = self.base_lr(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

    def state_dict(self) -> dict:
        return {"step_index": self.step_index}

    def load_state_dict(self, state: dict) -> None:
        self.set_step(int(state["step_index"]))
