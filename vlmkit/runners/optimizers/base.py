"""An optimizer component: which torch optimizer, its settings, and how parameters are grouped.

The learning rate is not set here: the scheduler owns it (LAVIS's ``init_lr``), and sets every group's
``lr = schedule(step) * group['lr_scale']``.  The strategy creates the torch optimizer (plain, or sharded).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from vlmkit.runners.optimizers.param_groups import build_param_groups


class OptimizerSpec:
    torch_class: type[torch.optim.Optimizer]

    def __init__(self, weight_decay: float, lr_scale: Mapping[str, float], no_decay: Iterable[str],
                 **kwargs: Any):
        self.weight_decay = weight_decay
        self.lr_scale = dict(lr_scale)
        self.no_decay = list(no_decay)
        self.kwargs = kwargs

    def param_groups(self, named_parameters: Iterable[tuple[str, torch.nn.Parameter]]) -> list[dict]:
        return build_param_groups(named_parameters, weight_decay=self.weight_decay, lr_scale=self.lr_scale,
                                  no_decay=self.no_decay)

    def create(self, groups: list[dict]) -> torch.optim.Optimizer:
        # lr=0 until the scheduler sets the first value (before any step).
        return self.torch_class(groups, lr=0.0, **self.kwargs)
