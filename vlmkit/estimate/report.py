"""One config's estimate: the run settings (config, then command-line flags), the measured model, the figures."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from torch import nn

from vlmkit.dtypes import BYTES, precision_name
from vlmkit.errors import ConfigError
from vlmkit.estimate import formulas
from vlmkit.estimate.fsdp_plan import rank_bytes
from vlmkit.estimate.measure import Measured



@dataclass(frozen=True)
class Settings:
    gpus: int
    gpu_mem_gb: float
    micro_batch: int
    precision: str
    strategy: str                    # registered name, as given
    sharding: str                    # formulas.SHARDING
    optimizer_states: int
    checkpointing: bool              # what the config asks of the LLM
    text_tokens: int
    wrap_classes: tuple[str, ...] = ()
    fsdp_param_dtype: Optional[str] = None
    fsdp_shard_frozen: bool = True
    fsdp_offload: Optional[str] = None  # 'cpu': the shards live in CPU memory


@dataclass(frozen=True)
class Estimate:
    measured: Measured
    settings: Settings
    states: formulas.StateMemory
    activations: float        # without checkpointing
    activations_ckpt: float   # every transformer layer checkpointed
    fsdp_gather: float        # unsharded FSDP units during forward/backward

    @property
    def total(self) -> float:
        return self.states.total + self.fsdp_gather + self.activations

    @property
    def total_ckpt(self) -> float:
        return self.states.total + self.fsdp_gather + self.activations_ckpt

    def fits(self, checkpointing: bool) -> str:
        total = self.total_ckpt if checkpointing else self.total
        return formulas.verdict(total, self.settings.gpu_mem_gb * formulas.GB)


def sharding_of(strategy: str) -> str:
    from vlmkit.registry import STRATEGIES
    from vlmkit.runners.strategies.fsdp import FSDP
    from vlmkit.runners.strategies.zero import ZeroDDP

    cls = STRATEGIES.get(strategy)
    if issubclass(cls, FSDP):
        return "full_shard"
    if issubclass(cls, ZeroDDP):
        return "shard_optimizer"
    from vlmkit.runners.strategies.base import Strategy

    if cls.__module__.startswith("vlmkit.runners.strategies.") and issubclass(cls, Strategy):
        return "replicate"
    raise ConfigError("run.strategy", f"no memory model for strategy {strategy!r}; vlmkit estimate knows "
                                      "single, ddp, zero (zero1, sharded_optimizer) and fsdp")


def optimizer_states(spec: Any) -> int:
    name = spec if isinstance(spec, str) else spec.get("name", spec.get("type"))
    if name == "adamw":
        return formulas.OPTIMIZER_STATES["adamw"]
    if name == "sgd":
        momentum = 0.9 if isinstance(spec, str) else float(spec.get("momentum", 0.9))
        return formulas.OPTIMIZER_STATES["sgd_momentum" if momentum else "sgd"]
    raise ConfigError("run.optimizer", f"no memory model for optimizer {name!r}; vlmkit estimate knows adamw and sgd")


def fsdp_gather_bytes(model: nn.Module, wrap_classes: tuple[str, ...], param_dtype: Optional[str]) -> float:
    """FSDP all-gathers one unit's parameters at a time and prefetches the next: 2 x the largest unit (the
    units are the modules of ``wrap_classes``; the root holds the rest). Without wrap classes the root is the
    whole model, gathered at once."""
    def unit_bytes(params) -> float:
        return sum(p.numel() * (BYTES[precision_name(param_dtype)] if param_dtype else p.element_size()) for p in params)

    units = [m for m in model.modules() if type(m).__name__ in wrap_classes and m is not model]
    inside = {id(p) for m in units for p in m.parameters()}
    root = unit_bytes(p for p in model.parameters() if id(p) not in inside)
    largest = max([root, *(unit_bytes(m.parameters()) for m in units)])
    return largest * (2 if units else 1)


def fsdp_states(model: nn.Module, s: Settings) -> formulas.StateMemory:
    """FSDP's states on one GPU from its sharding plan; with CPU offload the shards stay in CPU memory."""
    if s.fsdp_offload == "cpu" and s.gpus > 1:
        return formulas.StateMemory(weights=0.0, gradients=0.0, optimizer=0.0)
    plan = rank_bytes(model, s.gpus, s.optimizer_states, s.fsdp_shard_frozen)
    return formulas.StateMemory(weights=plan.weights, gradients=plan.gradients, optimizer=plan.optimizer)


def estimate(model: nn.Module, measured: Measured, settings: Settings) -> Estimate:
    s = settings
    states = (fsdp_states(model, s) if s.sharding == "full_shard"
              else formulas.state_memory(measured.params, s.sharding, s.gpus, s.optimizer_states))
    # autocast computes in the run's precision; fp32 (no autocast) in the weights' own dtype
    act_bytes = BYTES[precision_name(s.precision)] if s.precision != "fp32" else measured.compute_bytes
    acts = {False: 0.0, True: 0.0}
    for ckpt in acts:
        for st in measured.stacks:
            acts[ckpt] += formulas.stack_activations(st.layers, st.seq, s.micro_batch, st.hidden, st.heads,
                                                     act_bytes, st.quadratic, ckpt)
        if any(st.name == "llm" for st in measured.stacks):
            acts[ckpt] += formulas.logits_activations(measured.seq_len, s.micro_batch, measured.vocab, act_bytes)
    gather = (fsdp_gather_bytes(model, s.wrap_classes, s.fsdp_param_dtype)
              if s.sharding == "full_shard" and s.gpus > 1 else 0.0)
    return Estimate(measured, s, states, acts[False], acts[True], gather)
