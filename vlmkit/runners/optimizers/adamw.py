"""AdamW (decoupled weight decay), the optimizer of LAVIS, LLaVA and their descendants."""
from __future__ import annotations

import torch

from vlmkit.registry import OPTIMIZERS
from vlmkit.runners.optimizers.base import OptimizerSpec
from vlmkit.schema import NonNegative, Positive


@OPTIMIZERS.register("adamw")
class AdamW(OptimizerSpec):
    """torch.optim.AdamW with parameter groups (no decay on norms/biases, ``lr_scale`` per name prefix).

    ``no_decay``: more parameters without weight decay, each named by whole dot-separated name parts
    ('pos_embed', 'qformer.query_tokens'); 1-D tensors (norms, biases) never decay.
    """

    torch_class = torch.optim.AdamW

    def __init__(self, weight_decay: NonNegative[float] = 0.05, betas: tuple[float, float] = (0.9, 0.999),
                 eps: Positive[float] = 1e-8, lr_scale: dict[str, NonNegative[float]] = {}, no_decay: list[str] = (), fused: bool = False):  # noqa: B006
        super().__init__(weight_decay, lr_scale, no_decay, betas=tuple(betas), eps=eps,
                         **({"fused": True} if fused else {}))
