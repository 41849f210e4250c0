"""PLLaVA's released weights (LoRA adapters + projector) into a PLLaVA ``VideoLLM``, through an explicit key map.

PLLaVA saves only tensors whose names hold ``lora_`` or ``multi_modal_projector`` from its
``PllavaForConditionalGeneration`` with a peft-wrapped ``language_model``:
  ``language_model.base_model.model.model.layers.N.self_attn.{q,v}_proj.lora_{A,B}[.default].weight``
  ``multi_modal_projector.linear_{1,2}.{weight,bias}``
Load the llava-hf base first (``llava_hf.load_llava_hf``), then these; the LoRA scaling is not in the file:
it is the LLM's ``lora.alpha`` / ``lora.eval_alpha`` (PLLaVA evaluates at alpha 4 with r 128).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Optional

import torch
from torch import nn

from vlmkit.models.checkpoints.llava_hf import LoadReport, is_lora, load_mapped

PLLAVA_KEY_MAP: list[tuple[str, Optional[str]]] = [
    (r"^language_model\.base_model\.model\.(.+\.lora_[AB])(?:\.default)?\.weight$", r"llm.model.\1.default.weight"),
    (r"^multi_modal_projector\.linear_1\.(weight|bias)$", r"branches.0.stages.0.layers.0.\1"),
    (r"^multi_modal_projector\.linear_2\.(weight|bias)$", r"branches.0.stages.0.layers.2.\1"),
]


def _map(key: str) -> tuple[bool, Optional[str]]:
    for pattern, replacement in PLLAVA_KEY_MAP:
        if re.match(pattern, key):
            return True, re.sub(pattern, replacement, key)
    return False, None


def load_pllava_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    """Every LoRA adapter and projector tensor of the model must come from the file; nothing else may be in it."""
    projector = re.compile(r"^branches\.0\.stages\.0\.")
    return load_mapped(model, state_dict, _map, source="pllava weights",
                       require=lambda name: is_lora(name) or bool(projector.match(name)))
