"""Activation checkpointing by module family, chosen in the run's strategy (``activation_checkpointing:
[llm_layers, vision_blocks]``) and applied before the strategy wraps the model (DDP, FSDP's ``fully_shard``).

A family resolves to classes of the model as built: ``llm_layers`` to the LLM's decoder-layer classes (the
classes transformers lists in the model's ``_no_split_modules`` that sit in a layer list: ``Qwen2DecoderLayer``,
``LlamaDecoderLayer``, ``T5Block``, ...), ``vision_blocks`` to the transformer-block classes of each vision
tower's ``blocks`` (EVA ViT-g, CLIP, SigLIP, InternVideo2).  Each such module is replaced in its parent by torch's
``checkpoint_wrapper`` (non-reentrant ``torch.utils.checkpoint``), the wrapper torchtitan puts under FSDP2; while
gradients are recorded a wrapped layer gets no KV cache (its recompute would append to the cache a second time,
which transformers' own checkpointing avoids the same way).  The wrapper adds ``_checkpoint_wrapped_module`` to parameter names; ``clean_name`` and torch's distributed state dict
drop it, so checkpoints keep the published names.  No torch import at module level: the names are checked at
config validation.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from vlmkit.errors import ConfigError

ActivationFamily = Literal["llm_layers", "vision_blocks"]
FAMILIES: tuple[str, ...] = ("llm_layers", "vision_blocks")
SETTING = "run.strategy.activation_checkpointing"


def check_families(families: Iterable[str]) -> tuple[str, ...]:
    """The families as a tuple; an unknown name fails naming the accepted ones."""
    families = tuple(families)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ConfigError(SETTING, f"unknown module famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; accepted: "
                                   f"{', '.join(FAMILIES)}")
    return families


def _in_layer_lists(root: Any, class_names: set[str]) -> list:
    """The modules under ``root`` of those classes that are items of a ModuleList (a stack of layers),
    outermost only (a listed attention class inside a listed layer class is not wrapped twice)."""
    from torch import nn

    found, inside = [], set()
    for parent in root.modules():
        if id(parent) in inside or not isinstance(parent, nn.ModuleList):
            continue
        for child in parent:
            if type(child).__name__ in class_names and id(child) not in inside:
                found.append(child)
                inside.update(id(m) for m in child.modules())
    return found


def llm_layers(model: Any) -> tuple[Any, list]:
    llm = getattr(model, "llm", None)
    if llm is None:
        raise ConfigError(SETTING, f"llm_layers: {type(model).__name__} has no 'llm' (a VideoLLM's language model)")
    reason = getattr(llm, "layer_wrappers_bypassed", None)
    if reason:
        raise ConfigError(SETTING, f"llm_layers: {type(llm).__name__} {reason}; use model.llm.gradient_checkpointing")
    classes = {name for m in llm.modules() for name in (getattr(m, "_no_split_modules", None) or ())}
    layers = _in_layer_lists(llm, classes)
    if not layers:
        raise ConfigError(SETTING, f"llm_layers: no decoder layer found in {type(llm).__name__} (looked for "
                                   f"{sorted(classes) or 'the classes of transformers _no_split_modules'})")
    return llm, layers


def vision_blocks(model: Any) -> tuple[Any, list]:
    from torch import nn

    encoders = [b.encoder for b in getattr(model, "branches", ())]
    blocks = [block for e in encoders if isinstance(getattr(e, "blocks", None), nn.ModuleList) for block in e.blocks]
    if not blocks:
        raise ConfigError(SETTING, f"vision_blocks: no vision tower with transformer blocks in {type(model).__name__}"
                                   f" (encoders: {[type(e).__name__ for e in encoders]})")
    return nn.ModuleList(encoders), blocks


RESOLVERS = {"llm_layers": llm_layers, "vision_blocks": vision_blocks}
CACHE_ARGUMENTS = ("past_key_values", "past_key_value", "layer_past", "cache")


def checkpoint_without_cache(module: Any, *args: Any, **kwargs: Any) -> Any:
    """Non-reentrant checkpoint of ``module``; with gradients off (evaluation, generation) a plain call that keeps
    the cache."""
    import torch
    from torch.utils.checkpoint import checkpoint

    if not torch.is_grad_enabled():
        return module(*args, **kwargs)
    kwargs = {k: (None if k in CACHE_ARGUMENTS else v) for k, v in kwargs.items()}
    if "use_cache" in kwargs:
        kwargs["use_cache"] = False
    return checkpoint(module, *args, use_reentrant=False, **kwargs)


def _already_checkpointed(root: Any, modules: Sequence) -> bool:
    """transformers' and InternVideo2's switch (``gradient_checkpointing`` set on a module), fairscale's wrapper
    (``forward`` patched on the instance) or torch's wrapper (already a CheckpointWrapper)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

    return (any(getattr(m, "gradient_checkpointing", False) is True for m in root.modules())
            or any("forward" in vars(m) or isinstance(m, CheckpointWrapper) for m in modules))


def resolve(model: Any, families: Sequence[str]) -> dict[str, list]:
    """family -> the modules it wraps; errors name the family and what is missing or conflicting."""
    resolved = {}
    for family in check_families(families):
        root, modules = RESOLVERS[family](model)
        if _already_checkpointed(root, modules):
            raise ConfigError(SETTING, f"{family}: those modules are already checkpointed by the model's own "
                                       f"setting (gradient_checkpointing / checkpoint_offload of the LLM or tower); "
                                       f"checkpointing twice recomputes twice: keep one of the two")
        resolved[family] = modules
    return resolved


def apply(model: Any, families: Sequence[str]) -> dict[str, list]:
    """Wrap each module of the families in place (replaced in its parent); returns family -> wrappers."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    resolved = resolve(model, families)
    if not resolved:
        return {}
    targets = {id(m): family for family, modules in resolved.items() for m in modules}
    wrapped: dict[str, list] = {family: [] for family in resolved}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            family = targets.pop(id(child), None)
            if family is not None:
                wrapper = checkpoint_wrapper(child, checkpoint_fn=checkpoint_without_cache)
                setattr(parent, name, wrapper)
                wrapped[family].append(wrapper)
    return wrapped
