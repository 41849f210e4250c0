"""Parameter groups: no weight decay on norms and biases, per-component learning-rate scales."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from vlmkit.errors import ConfigError


def is_no_decay(name: str, param: torch.Tensor, extra_patterns: Iterable[str] = ()) -> bool:
    """No weight decay for tensors of at most one dimension (biases, and the scales and shifts of every torch
    norm layer: LayerNorm, RMSNorm, BatchNorm, GroupNorm), for parameters named ``bias``, and for names holding
    one of ``extra_patterns`` as whole dot-separated parts ('pos_embed' matches 'encoder.pos_embed', not
    'encoder.pos_embed_scale'). Names are never searched for substrings: 'bn' must not match 'subnet'."""
    parts = name.split(".")
    if param.ndim <= 1 or parts[-1] == "bias":
        return True
    return any(_holds_parts(parts, pattern.split(".")) for pattern in extra_patterns)


def _holds_parts(parts: list[str], run: list[str]) -> bool:
    return any(parts[i:i + len(run)] == run for i in range(len(parts) - len(run) + 1))


def _scale_for(name: str, lr_scale: Mapping[str, float]) -> float:
    """The scale of the longest matching name prefix (so 'llm.lora' can override 'llm')."""
    best, best_len = 1.0, -1
    for prefix, scale in lr_scale.items():
        if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
            best, best_len = float(scale), len(prefix)
    return best


def build_param_groups(named_parameters: Iterable[tuple[str, torch.nn.Parameter]], *, weight_decay: float,
                       lr_scale: Mapping[str, float], no_decay: Iterable[str] = ()) -> list[dict]:
    """Trainable parameters grouped by (lr scale, decay); each group carries 'lr_scale' for the schedulers.

    Frozen parameters (``requires_grad=False``) are left out, so they never enter the optimizer.
    """
    named = [(n, p) for n, p in named_parameters if p.requires_grad]
    if not named:
        raise ConfigError("run.optimizer", "the model has no trainable parameters (everything is frozen)")
    names = [n for n, _ in named]
    for prefix in lr_scale:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            tops = sorted({n.split(".")[0] for n in names})
            raise ConfigError(f"run.optimizer.lr_scale.{prefix}",
                              f"no trainable parameter name starts with '{prefix}'; top-level trainable modules: "
                              f"{', '.join(tops)}")
    no_decay = tuple(no_decay)
    groups: dict[tuple[float, bool], dict] = {}
    for name, param in named:
        decay = not is_no_decay(name, param, no_decay)
        key = (_scale_for(name, lr_scale), decay)
        group = groups.setdefault(key, {"params": [], "lr_scale": key[0],
                                        "weight_decay": weight_decay if decay else 0.0})
        group["params"].append(param)
    return list(groups.values())
