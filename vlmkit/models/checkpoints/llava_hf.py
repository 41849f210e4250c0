"""llava-hf LLaVA-1.6 (LLaVA-NeXT) checkpoints into a PLLaVA-shaped ``VideoLLM``, through an explicit key map.

Both layouts transformers has written are read:
  older: ``language_model.model.*``, ``language_model.lm_head.*``, ``vision_tower.vision_model.*``,
         ``multi_modal_projector.linear_{1,2}.*``, ``image_newline``
  newer: ``model.language_model.*``, ``lm_head.*``, ``model.vision_tower.vision_model.*``,
         ``model.multi_modal_projector.linear_{1,2}.*``, ``model.image_newline``
transformers >= 5 writes the tower without 'vision_model.' (``vision_tower.embeddings.*``); both are read.
They land on branch 0's CLIP tower, its first stage (a 2-layer ``mlp_gelu``: ``layers.0`` / ``layers.2``) and the
LLM. ``image_newline`` (LLaVA-NeXT's any-res row separator) has no place in a pooled video model and is dropped.
Names are matched to the model whether or not peft wrapped the LLM (``base_model.model.`` and ``.base_layer``).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from vlmkit.errors import ConfigError

LLAVA_HF_KEY_MAP: list[tuple[str, Optional[str]]] = [
    (r"^(?:model\.)?image_newline$", None),
    (r"^(?:model\.)?language_model\.lm_head\.(.+)$", r"llm.model.lm_head.\1"),
    (r"^lm_head\.(.+)$", r"llm.model.lm_head.\1"),
    (r"^language_model\.model\.(.+)$", r"llm.model.model.\1"),
    (r"^model\.language_model\.(.+)$", r"llm.model.model.\1"),
    (r"^(?:model\.)?vision_tower\.(?:vision_model\.)?(.+)$", r"branches.0.encoder.model.\1"),
    (r"^(?:model\.)?multi_modal_projector\.linear_1\.(weight|bias)$", r"branches.0.stages.0.layers.0.\1"),
    (r"^(?:model\.)?multi_modal_projector\.linear_2\.(weight|bias)$", r"branches.0.stages.0.layers.2.\1"),
]

_PEFT_PREFIX = re.compile(r"\.base_model\.model\.")
_PEFT_BASE_LAYER = re.compile(r"\.base_layer(?=\.)")
# transformers < 5 nests CLIPVisionModel's weights under 'vision_model.'; 5.x does not.
_VISION_MODEL = re.compile(r"^(branches\.\d+\.encoder\.model\.)vision_model\.")


def map_key(key: str, key_map: list[tuple[str, Optional[str]]]) -> tuple[bool, Optional[str]]:
    """(matched, new name); a matched key with new name None is deliberately dropped."""
    for pattern, replacement in key_map:
        if re.match(pattern, key):
            return True, None if replacement is None else re.sub(pattern, replacement, key)
    return False, None


def canonical(name: str) -> str:
    """A model parameter name without peft's wrapping (and CLIP's optional 'vision_model.'), so one map serves
    LoRA and plain LLMs under any transformers release."""
    return _VISION_MODEL.sub(r"\1", _PEFT_BASE_LAYER.sub("", _PEFT_PREFIX.sub(".", name)))


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def load_mapped(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                key_map: list[tuple[str, Optional[str]]] | Callable[[str], tuple[bool, Optional[str]]], *,
                source: str, require: Callable[[str], bool] = lambda name: True) -> LoadReport:
    """Copy ``state_dict`` into ``model`` through ``key_map``; unknown keys and shape mismatches raise.

    ``require(name)`` says which model parameters this checkpoint must cover; those left uncovered raise too
    (LoRA adapters, say, are not in a base checkpoint and are not required of it).
    """
    mapper = key_map if callable(key_map) else (lambda key: map_key(key, key_map))
    targets = {canonical(name): name for name in model.state_dict()}
    own = model.state_dict()
    report, unknown, updates = LoadReport(), [], {}
    for key, tensor in state_dict.items():
        matched, new = mapper(key)
        if matched and new is None:
            report.dropped.append(key)
            continue
        target = targets.get(canonical(new)) if matched else None
        if target is None:
            unknown.append(key if not matched else f"{key} -> {new}")
            continue
        if tuple(own[target].shape) != tuple(tensor.shape):
            raise ConfigError(source, f"'{key}' has shape {tuple(tensor.shape)} but the model's '{target}' is "
                                      f"{tuple(own[target].shape)}; is the preset the checkpoint's size?")
        updates[target] = tensor
        report.loaded.append(target)
    if unknown:
        shown = ", ".join(unknown[:6]) + (f" ... ({len(unknown)} in all)" if len(unknown) > 6 else "")
        raise ConfigError(source, f"{len(unknown)} checkpoint tensor(s) have no place in the model: {shown}")
    report.missing = sorted(n for n in own if require(n) and n not in updates)
    if report.missing:
        shown = ", ".join(report.missing[:6]) + (f" ... ({len(report.missing)} in all)" if len(report.missing) > 6
                                                 else "")
        raise ConfigError(source, f"the checkpoint does not cover {len(report.missing)} model tensor(s): {shown}")
    with torch.no_grad():
        for name, tensor in updates.items():
            own[name].copy_(tensor.to(own[name].dtype))
    return report


def is_lora(name: str) -> bool:
    return ".lora_" in name


def load_llava_hf(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    """A llava-hf LLaVA-1.6 state dict (either layout) into a PLLaVA ``VideoLLM``; every non-LoRA tensor of the
    LLM, the CLIP tower and the projector must be covered (pooling has no weights)."""
    return load_mapped(model, state_dict, LLAVA_HF_KEY_MAP, source="llava_hf checkpoint",
                       require=lambda name: not is_lora(name))
