"""SGD with momentum."""
from __future__ import annotations

import torch

from vlmkit.registry import OPTIMIZERS
from vlmkit.runners.optimizers.base import OptimizerSpec
from vlmkit.schema import NonNegative


@OPTIMIZERS.register("sgd")
class SGD(OptimizerSpec):
    """torch.optim.SGD with the same parameter grouping as adamw."""

    torch_class = torch.optim.SGD

    def __init__(self, momentum: NonNegative[float] = 0.9, nesterov: bool = False,
                 weight_decay: NonNegative[float] = 0.0, lr_scale: dict[str, NonNegative[float]] = {}, no_decay: list[str] = ()):  # noqa: B006
        super().__init__(weight_decay, lr_scale, no_decay, momentum=momentum, nesterov=nesterov)
