"""Fully sharded data parallel (torch FSDP2, ``fully_shard``): parameters, gradients and optimizer state sharded."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Optional

import torch

from vlmkit.dtypes import Precision, torch_dtype
from vlmkit.errors import ConfigError
from vlmkit.registry import STRATEGIES
from vlmkit.runners.strategies.base import Strategy


def _is_fsdp(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _full_options(**extra):
    # Imported here: torch.distributed.checkpoint costs seconds to import, and most runs never need it.
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **extra)


@STRATEGIES.register("fsdp")
class FSDP(Strategy):
    """Shard every module whose class name is in ``wrap_classes`` (e.g. decoder layers), then the root.

    ``param_dtype: bf16`` keeps fp32 master weights and computes in bf16 (FSDP's own mixed precision).
    """

    def __init__(self, wrap_classes: list[str] = (), reshard_after_forward: bool = True,  # noqa: B006
                 param_dtype: Optional[Precision] = None):
        super().__init__()
        self.wrap_classes = set(wrap_classes)
        self.reshard_after_forward = reshard_after_forward
        try:
            self.param_dtype = torch_dtype(param_dtype) if param_dtype is not None else None
        except ValueError as err:
            raise ConfigError("run.strategy.param_dtype", f"{err} (or null)") from err

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if not self.env.distributed:
            return model
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = MixedPrecisionPolicy(param_dtype=self.param_dtype)
        found = set()
        for module in model.modules():
            if type(module).__name__ in self.wrap_classes and module is not model:
                found.add(type(module).__name__)
                fully_shard(module, reshard_after_forward=self.reshard_after_forward, mp_policy=policy)
        missing = self.wrap_classes - found
        if missing:
            raise ConfigError("run.strategy.wrap_classes", f"no module of class {sorted(missing)} in the model")
        fully_shard(model, reshard_after_forward=self.reshard_after_forward, mp_policy=policy)
        return model

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager:
        if _is_fsdp(model):
            return _gradient_sync_off(model)
        return contextlib.nullcontext()

    def clip_grad_norm(self, model: torch.nn.Module, max_norm: float) -> torch.Tensor:
        norm = super().clip_grad_norm(model, max_norm)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def trainable_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        if not _is_fsdp(model):
            return super().trainable_state(model)
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        names = {name for name, _ in self.trainable_parameters(model)}
        full = get_model_state_dict(model, options=_full_options(cpu_offload=True))  # collective; tensors land on rank 0
        return {name: tensor for name, tensor in full.items() if name in names}

    def load_trainable_state(self, model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        if not _is_fsdp(model):
            return super().load_trainable_state(model, tensors)
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        set_model_state_dict(model, tensors, options=_full_options(strict=False))

    def optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        if not _is_fsdp(model):
            return super().optimizer_state(model, optimizer)
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=_full_options(cpu_offload=True))

    def load_optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        if not _is_fsdp(model):
            return super().load_optimizer_state(model, optimizer, state)
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=_full_options())


@contextlib.contextmanager
def _gradient_sync_off(model: torch.nn.Module) -> Iterator[None]:
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)
