"""A strategy decides how the model and optimizer are spread over processes, and how their state is read.

The base class is the single-process behaviour; DDP, ZeRO and FSDP override what they change. Every strategy
checkpoints the activations of the module families its ``activation_checkpointing`` names before wrapping.
Every ``*_state`` method returns full (unsharded) CPU tensors, valid at least on rank 0, so checkpoints do
not depend on the number of processes that wrote them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from vlmkit.runners import distributed
from vlmkit.runners.distributed import DistEnv
from vlmkit.runners.strategies import activation_checkpointing as families
from vlmkit.runners.strategies.activation_checkpointing import ActivationFamily

# Name parts that wrappers insert: DDP's "module" heads the name; torch.compile's "_orig_mod", FSDP1's and the
# activation-checkpoint wrapper's parts may sit at any depth (submodules wrapped one by one).
LEADING_WRAPPER_PARTS = ("module", "_orig_mod")
INNER_WRAPPER_PARTS = ("_orig_mod", "_fsdp_wrapped_module", "_checkpoint_wrapped_module")


def clean_name(name: str) -> str:
    """A parameter name without the parts wrappers (DDP, torch.compile, FSDP1, checkpointing) add; only whole
    dot-separated parts are dropped, so 'llm.submodule.weight' stays as it is."""
    parts = name.split(".")
    start = 0
    while start < len(parts) - 1 and parts[start] in LEADING_WRAPPER_PARTS:
        start += 1
    return ".".join(p for p in parts[start:] if p not in INNER_WRAPPER_PARTS)


class Strategy:
    """One process, no wrapping.

    ``activation_checkpointing``: module families whose activations are recomputed in the backward pass
    (``llm_layers``: the LLM's decoder layers, ``vision_blocks``: the vision towers' transformer blocks), each
    wrapped with torch's checkpoint wrapper (docs/training.md, "Activation checkpointing").
    """

    def __init__(self, activation_checkpointing: list[ActivationFamily] = ()) -> None:  # noqa: B006
        self.env: DistEnv | None = None
        self.activation_checkpointing = families.check_families(activation_checkpointing)

    # ------------------------------------------------------------------ setup
    def setup(self, device: torch.device) -> DistEnv:
        self.env = distributed.init_distributed(device)
        return self.env

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model (built in host memory) wrapped and moved to ``device`` (FSDP shards it first, fsdp.py)."""
        self.checkpoint_activations(model)
        return model.to(device)

    def checkpoint_activations(self, model: torch.nn.Module) -> dict[str, list[torch.nn.Module]]:
        """Wrap the configured families' modules in place (before any sharding or DDP wrapper)."""
        return families.apply(model, self.activation_checkpointing)

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model

    def trainable_parameters(self, model: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Parameter]]:
        for name, param in self.unwrap(model).named_parameters():
            if param.requires_grad:
                yield clean_name(name), param

    def create_optimizer(self, spec: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
        return spec.create(spec.param_groups(self.trainable_parameters(model)))

    # ------------------------------------------------------------------ the step
    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager:
        """Skip gradient synchronisation for an accumulation micro-batch."""
        return contextlib.nullcontext()

    def clip_grad_norm(self, model: torch.nn.Module, max_norm: float) -> torch.Tensor:
        params = [p for _, p in self.trainable_parameters(model)]
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    # ------------------------------------------------------------------ state
    def trainable_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {name: param.detach().to("cpu") for name, param in self.trainable_parameters(model)}

    def load_trainable_state(self, model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, param in self.trainable_parameters(model):
                param.copy_(tensors[name].to(device=param.device, dtype=param.dtype))

    def optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        return optimizer.state_dict()

    def load_optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        optimizer.load_state_dict(state)
