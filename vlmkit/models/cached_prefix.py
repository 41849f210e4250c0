"""The leading modules of each visual branch that a frozen-feature cache may stand in for, and their fingerprint.

A branch's cacheable prefix is its encoder and the stages right after it, in order, as long as each one is a fixed
function of its input during training: no parameter that trains, and either frozen (``VisualStage.freeze``: eval
mode kept under ``train()``, so no dropout) or without parameters, buffers and submodules (the poolers). A stage that
reads the instruction text or other batch entries ends the prefix: its output depends on more than the frames. A
frame selector (VideoTGB) picks frames from the pixels before any encoder, so it rules the cache out.

``vlmkit cache-features`` stores a prefix's output per video; the model then runs only the stages after it
(``VideoLLM.use_cached_features``). The fingerprint (``prefix_key``) says which modules were cached, the SHA-256 of
each one's state (every parameter and buffer: name, dtype, shape, bytes) and its configuration, so a cache built
from other weights or settings is refused, naming what differs.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal, Optional

import torch
from torch import nn

# Configuration keys that do not change what a module computes: where its weights were read from (their content
# is hashed instead) and how its backward pass saves memory.
NOT_COMPUTING = ("pretrained", "gradient_checkpointing", "checkpoint_offload")

Through = Literal["frozen", "encoder"]


def fixed_function(module: nn.Module) -> bool:
    """Whether ``module`` computes the same output for the same input in training as when the cache was built."""
    if any(p.requires_grad for p in module.parameters()):
        return False
    if getattr(module, "frozen", False):
        return True
    return not any(True for _ in module.parameters()) and not any(True for _ in module.buffers()) \
        and not any(True for _ in module.children())


def prefix_depths(model: Any, through: Through = "frozen") -> tuple[dict[int, int], list[str]]:
    """(pixel branch -> stages cached after its encoder, reasons the other pixel branches cannot be cached).

    ``through="encoder"`` caches the encoder outputs only; ``"frozen"`` also the fixed stages after it."""
    if through not in ("frozen", "encoder"):
        raise ValueError(f"through must be 'frozen' or 'encoder', got {through!r}")
    if getattr(model, "selector", None) is not None:
        return {}, ["model.selector: the frame selector picks frames from the pixels before any encoder runs, so "
                    "no encoder output can be cached; train without a feature cache"]
    depths, refusals = {}, []
    for i in model.pixel_branches:
        branch, where = model.branches[i], f"model.branches[{i}]"
        if not fixed_function(branch.encoder):
            refusals.append(f"{where}.encoder ({type(branch.encoder).__name__}) is not frozen (it has trainable "
                            f"parameters or leaves eval mode in training); set {where}.encoder.freeze: true to "
                            f"cache its features")
            continue
        depth = 0
        if through == "frozen":
            for stage in branch.stages:
                if stage.reads_text or stage.batch_keys or not fixed_function(stage):
                    break
                depth += 1
        depths[i] = depth
    return depths, refusals


def prefix_modules(model: Any, branch: int, depth: int) -> list[tuple[str, nn.Module]]:
    """(module path, module) of branch ``branch``'s encoder and its first ``depth`` stages."""
    visual = model.branches[branch]
    return [(f"branches.{branch}.encoder", visual.encoder),
            *((f"branches.{branch}.stages.{s}", visual.stages[s]) for s in range(depth))]


def state_digest(module: nn.Module) -> str:
    """SHA-256 over every parameter and buffer of ``module``: name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def module_config(model_config: Optional[Mapping], path: str) -> Optional[dict]:
    """The configuration of ``branches.B.encoder`` / ``branches.B.stages.S`` in a model config, without the keys
    that do not change what it computes; None when the config is not known (a model built in code)."""
    if not model_config:
        return None
    branches = model_config.get("branches")
    if isinstance(branches, Mapping):
        branches = [branches]
    parts = path.split(".")
    try:
        entry = branches[int(parts[1])]
        entry = entry["encoder"] if parts[2] == "encoder" else entry["stages"][int(parts[3])]
    except (KeyError, IndexError, TypeError):
        return None
    if isinstance(entry, str):
        entry = {"name": entry}
    return {key: value for key, value in dict(entry).items() if key not in NOT_COMPUTING}


def prefix_key(model: Any, depths: Mapping[int, int], model_config: Optional[Mapping] = None) -> dict[str, Any]:
    """What the cached features of each branch depend on, on the model side: per branch its depth, the output shape
    per video ``[T, N, D]``, and per cached module its state digest and configuration."""
    key: dict[str, Any] = {}
    for branch, depth in sorted(depths.items()):
        visual = model.branches[branch]
        frames, tokens = visual.prefix_tokens(depth, model.encoded_frames)
        modules = {path: {"weights": state_digest(module), "config": module_config(model_config, path)}
                   for path, module in prefix_modules(model, branch, depth)}
        key[str(branch)] = {"depth": depth, "shape": [frames, tokens, visual.prefix_width(depth)],
                            "modules": modules}
    return key


def config_path(path: str) -> str:
    """``branches.0.stages.1`` -> ``model.branches[0].stages[1]``: the key path a user sets."""
    parts = path.split(".")
    return "model." + ".".join(f"{a}[{b}]" for a, b in zip(parts[::2], parts[1::2])) + \
        ("." + parts[-1] if len(parts) % 2 else "")


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {k: v for key, item in value.items() for k, v in _leaves(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def key_differences(cached: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two ``prefix_key``s, one line each, naming the branch and module."""
    lines = []
    for branch in sorted(set(cached) | set(current)):
        where = f"model.branches[{branch}]"
        if branch not in current:
            lines.append(f"{where}: the cache holds its features but this model reads pixels there (or has no such "
                         f"branch)")
            continue
        if branch not in cached:
            continue  # a branch the cache does not serve reads pixels as before
        old, new = cached[branch], current[branch]
        if old["shape"] != new["shape"]:
            lines.append(f"{where}: features of shape (T, N, D)={tuple(old['shape'])} in the cache, "
                         f"{tuple(new['shape'])} from this model (frames per video, image size or a stage differ)")
        for path in old["modules"]:
            then, now, label = old["modules"][path], new["modules"].get(path), config_path(path)
            if now is None:
                lines.append(f"{label}: cached, but this model does not cache it")
                continue
            if then["weights"] != now["weights"]:
                lines.append(f"{label}: its weights differ (sha256 {then['weights'][:12]}... in the cache, "
                             f"{now['weights'][:12]}... now)")
            if None not in (then["config"], now["config"]) and then["config"] != now["config"]:
                a, b = _leaves(then["config"]), _leaves(now["config"])
                changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                lines.append(f"{label}: its settings differ: " + ", ".join(
                    f"{k} {a.get(k)!r} in the cache, {b.get(k)!r} now" for k in changed))
    return lines
