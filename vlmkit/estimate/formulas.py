"""The memory model of `vlmkit estimate` (docs/estimate.md gives the derivation). Pure arithmetic, in bytes.

States follow what vlmkit's runner does: torch optimizers keep their moments in each parameter's dtype,
gradients have the parameter's dtype, and there is no separate master copy (autocast computes in 16 bits
from the weights as built). DDP replicates everything; ZeRO-1 shards the optimizer state; FSDP (full shard)
shards weights, gradients and optimizer state over the world size.
"""
from __future__ import annotations

from dataclasses import dataclass

GB = 1e9  # figures are decimal gigabytes: 1e9 fp32 parameters = 4 GB

# moments kept per trainable parameter, in the parameter's dtype
OPTIMIZER_STATES = {"adamw": 2, "sgd_momentum": 1, "sgd": 0}
SHARDING = ("replicate", "shard_optimizer", "full_shard")


@dataclass(frozen=True)
class ParamBytes:
    """Bytes of the parameters as built (each in its own dtype), frozen and trainable apart."""
    frozen: float
    trainable: float


@dataclass(frozen=True)
class StateMemory:
    weights: float
    gradients: float
    optimizer: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer


def state_memory(params: ParamBytes, sharding: str, world: int, optimizer_states: int) -> StateMemory:
    """Per-GPU weights, gradients and optimizer state. ``sharding``: one of SHARDING."""
    if sharding not in SHARDING:
        raise ValueError(f"sharding must be one of {SHARDING}, got {sharding!r}")
    if world < 1:
        raise ValueError(f"world size must be >= 1, got {world}")
    full = world if sharding == "full_shard" else 1
    opt = world if sharding in ("shard_optimizer", "full_shard") else 1
    return StateMemory(weights=(params.frozen + params.trainable) / full,
                       gradients=params.trainable / full,
                       optimizer=optimizer_states * params.trainable / opt)


def layer_activations(seq: int, batch: int, hidden: int, heads: int, act_bytes: int, quadratic: bool) -> float:
    """One transformer layer's saved activations (Korthikanti et al. 2022, eq. 1): s*b*h*(34 + 5*a*s/h) bytes
    for 16-bit activations. Memory-efficient attention (SDPA, flash) keeps no s x s scores: ``quadratic`` False
    drops the 5*a*s/h term. 32-bit activations double it."""
    per_16bit = 34 * seq * batch * hidden + (5 * heads * seq * seq * batch if quadratic else 0)
    return per_16bit * act_bytes / 2


def stack_activations(layers: int, seq: int, batch: int, hidden: int, heads: int, act_bytes: int,
                      quadratic: bool, checkpointing: bool) -> float:
    """A stack of ``layers`` layers. With full activation checkpointing each layer keeps only its input
    (s*b*h values) and one layer's activations exist again while it is recomputed in the backward pass."""
    full = layer_activations(seq, batch, hidden, heads, act_bytes, quadratic)
    if not checkpointing:
        return layers * full
    return layers * seq * batch * hidden * act_bytes + full


def logits_activations(seq: int, batch: int, vocab: int, act_bytes: int) -> float:
    """The LM head's logits in the compute dtype plus the fp32 copy and log-softmax the loss keeps."""
    return seq * batch * vocab * (act_bytes + 8)


def verdict(total: float, gpu_bytes: float) -> str:
    """'yes' with 10 % headroom left (CUDA context, allocator fragmentation, temporaries are not counted),
    'tight' within the card, 'no' beyond it."""
    if total <= 0.9 * gpu_bytes:
        return "yes"
    return "tight" if total <= gpu_bytes else "no"
