"""What the estimate reads from a model built on the meta device: parameter bytes, token counts, layer shapes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vlmkit.estimate.formulas import ParamBytes


@dataclass(frozen=True)
class Stack:
    """A run of identical transformer layers over ``seq`` tokens per sample (``heads`` 0: attention not counted
    quadratically, e.g. a vision tower whose heads are not known)."""
    name: str
    layers: int
    seq: int
    hidden: int
    heads: int
    quadratic: bool


@dataclass(frozen=True)
class Measured:
    total: int
    trainable: int
    params: ParamBytes
    visual_tokens: int
    seq_len: int
    vocab: int
    stacks: tuple[Stack, ...]  # the stacks whose activations autograd keeps
    compute_bytes: int         # bytes per element of the LLM's weights (its compute dtype without autocast)


def param_bytes(model: nn.Module) -> tuple[int, int, ParamBytes]:
    total = trainable = 0
    frozen_b = trainable_b = 0
    for p in model.parameters():
        size = p.numel() * p.element_size()
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
            trainable_b += size
        else:
            frozen_b += size
    return total, trainable, ParamBytes(frozen=frozen_b, trainable=trainable_b)


def _trains(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def _layer_count(module: nn.Module) -> int:
    """The length of the longest ModuleList of parameterised blocks: a tower's transformer layers."""
    lists = [m for m in module.modules() if isinstance(m, nn.ModuleList) and any(True for _ in m.parameters())]
    return max((len(m) for m in lists), default=0)


def sequence_length(visual_tokens: int, text_tokens: int, max_length: int | None) -> int:
    seq = visual_tokens + text_tokens
    return min(seq, max_length) if max_length else seq


def llm_config(model: Any) -> Any:
    config = model.llm.base_config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def measure(model: Any, text_tokens: int) -> Measured:
    """``model``: a VideoLLM. The LLM is one stack over visual + text tokens (capped by max_length); an
    encoder-decoder LLM reads them in its encoder and the text in its decoder. A vision tower counts only when
    it has trainable parameters (a frozen tower keeps no activations for backward)."""
    total, trainable, params = param_bytes(model)
    seq = sequence_length(model.visual_tokens, text_tokens, model.max_length)
    config = llm_config(model)
    quadratic = model.llm.attn_implementation == "eager"
    hidden, heads = int(config.hidden_size), int(config.num_attention_heads)
    stacks = []
    # gradients reach the LLM's activations when it trains or when anything before it does
    if _trains(model.llm) or any(_trains(b) for b in model.branches):
        stacks.append(Stack("llm", int(config.num_hidden_layers), seq, hidden, heads, quadratic))
        if getattr(config, "is_encoder_decoder", False):
            stacks.append(Stack("llm decoder", int(config.num_decoder_layers), min(text_tokens, seq), hidden,
                                heads, quadratic))
    for i, branch in enumerate(model.branches):
        encoder = branch.encoder
        layers = _layer_count(encoder)
        if _trains(encoder) and layers and branch.reads_pixels:
            tokens = model.encoded_frames * int(encoder.tokens_per_frame)
            stacks.append(Stack(f"branch {i} encoder", layers, tokens, int(encoder.out_dim), 0, False))
    weight = next((p for p in model.llm.parameters()), None)
    compute = weight.element_size() if weight is not None else torch.finfo(torch.float32).bits // 8
    return Measured(total, trainable, params, model.visual_tokens, seq, int(config.vocab_size), tuple(stacks),
                    compute)
