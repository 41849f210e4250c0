"""DistributedDataParallel: replicated model, gradients averaged across ranks (gloo on CPU, nccl on GPU)."""
from __future__ import annotations

import contextlib

import torch
from torch.nn.parallel import DistributedDataParallel

from vlmkit.registry import STRATEGIES
from vlmkit.runners.strategies.activation_checkpointing import ActivationFamily
from vlmkit.runners.strategies.base import Strategy


@STRATEGIES.register("ddp")
class DDP(Strategy):
    """DDP under torchrun; with one process it is the single-process strategy (no wrapper).

    ``find_unused_parameters`` must be true when some batches leave parameters unused (a modality absent
    from a batch); otherwise DDP waits for their gradients forever.
    """

    def __init__(self, find_unused_parameters: bool = False, bucket_cap_mb: float = 25.0,
                 gradient_as_bucket_view: bool = True,
                 activation_checkpointing: list[ActivationFamily] = ()):  # noqa: B006
        super().__init__(activation_checkpointing)
        self.find_unused_parameters = find_unused_parameters
        self.bucket_cap_mb = bucket_cap_mb
        self.gradient_as_bucket_view = gradient_as_bucket_view

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        model = super().wrap(model, device)
        if not self.env.distributed:
            return model
        return DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=self.find_unused_parameters, bucket_cap_mb=self.bucket_cap_mb,
            gradient_as_bucket_view=self.gradient_as_bucket_view)

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager:
        if isinstance(model, DistributedDataParallel):
            return model.no_sync()
        return contextlib.nullcontext()
