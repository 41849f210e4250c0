"""LoRA folded into the LLM's weights, at the scaling the evaluator uses.

PLLaVA trains its LoRA with one alpha and evaluates with another (``lora.eval_alpha``: the wrapper switches every
LoRA layer's scaling to ``eval_alpha / r`` in eval mode). The merged weight must be the one evaluation computes
with, so the LLM is put in eval mode first and peft's ``merge_and_unload`` folds ``W + scaling * B @ A`` with the
scaling then in force. The wrapper is left holding the plain transformers model, without LoRA settings.
"""
from __future__ import annotations

from typing import Any, Optional

from torch import nn


def lora_settings(llm: nn.Module) -> Optional[dict[str, Any]]:
    """{alpha, eval_alpha, alpha_used, r, layers} of an LLM wrapper holding peft LoRA adapters; None without."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    inner = getattr(llm, "model", None)
    if not isinstance(inner, PeftModel):
        return None
    layers = [m for m in inner.modules() if isinstance(m, LoraLayer)]
    ranks = sorted({r for layer in layers for r in layer.r.values()})
    scalings = sorted({s for layer in layers for s in layer.scaling.values()})
    eval_alpha = getattr(llm, "lora_eval_alpha", None)
    train_alpha = getattr(llm, "lora_alpha", None)
    return {"r": ranks[0] if len(ranks) == 1 else ranks, "alpha": train_alpha, "eval_alpha": eval_alpha,
            "alpha_used": eval_alpha if eval_alpha is not None else train_alpha,
            "scaling": scalings[0] if len(scalings) == 1 else scalings, "layers": len(layers)}


def merge_lora(model: nn.Module) -> Optional[dict[str, Any]]:
    """Fold the LoRA adapters of ``model.llm`` into its base weights, in place; returns what was merged (None when
    the LLM has no adapters). The model is put in eval mode first: the evaluator's alpha (``eval_alpha`` where
    set) is the one merged."""
    llm = model.llm
    model.eval()  # the wrapper sets every layer's scaling to eval_alpha / r here (hf_lm.HFLanguageModel.train)
    settings = lora_settings(llm)
    if settings is None:
        return None
    llm.model = llm.model.merge_and_unload()
    llm.lora_alpha = llm.lora_eval_alpha = None  # no adapters left to rescale on a train()/eval() switch
    return settings
