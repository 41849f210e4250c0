"""Fully sharded data parallel (torch FSDP2, ``fully_shard``): parameters, gradients and optimizer state sharded."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Optional

import torch

from vlmkit.dtypes import Precision, torch_dtype
from vlmkit.errors import ConfigError
from vlmkit.registry import STRATEGIES
from vlmkit.runners.strategies.activation_checkpointing import ActivationFamily
from vlmkit.runners.strategies.base import Strategy
from vlmkit.runners.strategies.fsdp_placement import shard_then_place
from vlmkit.runners.strategies.fsdp_settings import DTYPE_SETTINGS, Offload, fsdp_config_problems, precision_of


def _is_fsdp(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _full_options(**extra):
    # Imported here: torch.distributed.checkpoint costs seconds to import, and most runs never need it.
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **extra)


def shard_units(model: torch.nn.Module, wrap_classes: set[str]) -> list[torch.nn.Module]:
    """The modules ``fully_shard`` is applied to, inner ones first, the root last. A module wrapped for activation
    checkpointing is sharded through its wrapper (as torchtitan does), matched by the wrapped class's name."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

    units, inside_wrapper = [], set()
    for module in model.modules():
        if module is model or id(module) in inside_wrapper:
            continue
        inner = module._checkpoint_wrapped_module if isinstance(module, CheckpointWrapper) else module
        if isinstance(module, CheckpointWrapper):
            inside_wrapper.add(id(inner))
        if type(inner).__name__ in wrap_classes:
            units.append(module)
    return [*units, model]


@STRATEGIES.register("fsdp")
class FSDP(Strategy):
    """Shard every module whose class name is in ``wrap_classes`` (e.g. decoder layers), then the root.

    Mixed precision (FSDP2's ``MixedPrecisionPolicy``): ``param_dtype`` is the dtype the unsharded parameters
    are gathered and computed in (the sharded ones stay as built, e.g. fp32 master weights), ``reduce_dtype``
    the dtype gradients are reduce-scattered in (default: ``param_dtype``), ``output_dtype`` the dtype of the
    model's outputs (default: as computed). ``offload: cpu`` keeps the sharded parameters, gradients and
    optimizer state in CPU memory (the optimizer steps there; pinned memory on CUDA) and brings each unit to the
    device for its forward and backward. ``shard_frozen: false`` leaves frozen parameters whole on every rank
    (never gathered, more memory). Checkpoints gather the trainable parameters only.
    """

    config_problems = classmethod(fsdp_config_problems)

    def __init__(self, wrap_classes: list[str] = (), reshard_after_forward: bool = True,  # noqa: B006
                 param_dtype: Optional[Precision] = None, reduce_dtype: Optional[Precision] = None,
                 output_dtype: Optional[Precision] = None, offload: Offload = None, shard_frozen: bool = True,
                 activation_checkpointing: list[ActivationFamily] = ()):  # noqa: B006
        super().__init__(activation_checkpointing)
        values = {"param_dtype": param_dtype, "reduce_dtype": reduce_dtype, "output_dtype": output_dtype,
                  "offload": offload}
        problems = fsdp_config_problems(type(self), values, "run.strategy")
        if problems:
            raise problems[0]
        if offload not in (None, "cpu"):
            raise ConfigError("run.strategy.offload", f"unknown offload {offload!r}; accepted: cpu (or null)")
        self.wrap_classes = set(wrap_classes)
        self.reshard_after_forward = reshard_after_forward
        self.dtypes = {key: torch_dtype(precision_of(values, key, "run.strategy")) if values[key] else None
                       for key in DTYPE_SETTINGS}
        self.param_dtype = self.dtypes["param_dtype"]
        self.offload = offload
        self.shard_frozen = shard_frozen

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """Sharded in host memory, then only this rank's shards go to the device (fsdp_placement.py): no device
        ever holds the whole model."""
        if not self.env.distributed:
            return super().wrap(model, device)
        self.checkpoint_activations(model)  # first: FSDP shards the wrappers
        shards_on = torch.device("cpu") if self.offload == "cpu" else device
        return shard_then_place(model, device, lambda skeleton: self.shard(skeleton, device), shards_on)

    def shard(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``fully_shard`` the units and the root over every process, on a mesh of ``device``'s type (the default
        mesh would take CUDA whenever it exists, even for a CPU run); also used on the meta device by the memory
        report."""
        import torch.distributed as dist
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

        mesh = init_device_mesh("cpu" if device.type == "meta" else device.type, (dist.get_world_size(),))
        options = {"mesh": mesh, "reshard_after_forward": self.reshard_after_forward,
                   "mp_policy": MixedPrecisionPolicy(**self.dtypes),
                   "offload_policy": CPUOffloadPolicy(pin_memory=device.type == "cuda") if self.offload == "cpu"
                   else OffloadPolicy()}
        if not self.shard_frozen:
            options["ignored_params"] = {p for p in model.parameters() if not p.requires_grad}
        units = shard_units(model, self.wrap_classes)
        found = {type(getattr(u, "_checkpoint_wrapped_module", u)).__name__ for u in units[:-1]}
        missing = self.wrap_classes - found
        if missing:
            raise ConfigError("run.strategy.wrap_classes", f"no module of class {sorted(missing)} in the model")
        for unit in units:
            fully_shard(unit, **options)
        return model

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager:
        if _is_fsdp(model):
            return _gradient_sync_off(model)
        return contextlib.nullcontext()

    def clip_grad_norm(self, model: torch.nn.Module, max_norm: float) -> torch.Tensor:
        norm = super().clip_grad_norm(model, max_norm)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def trainable_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The full trainable tensors on rank 0 (a collective); frozen parameters are never gathered."""
        if not _is_fsdp(model):
            return super().trainable_state(model)
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        full = get_model_state_dict(model, options=_full_options(cpu_offload=True, ignore_frozen_params=True))
        if self.env.is_main:
            names = {name for name, _ in self.trainable_parameters(model)}
            if full.keys() != names:
                raise RuntimeError(f"FSDP state dict names differ from the trainable parameters: "
                                   f"{sorted(full.keys() ^ names)[:8]}")
        return full

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
