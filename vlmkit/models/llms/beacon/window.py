"""One window of a Qwen2 decoder over a compact KV memory, composed from transformers' own Qwen2 modules.

The decoder layers' submodules (norms, projections, MLP, rotary embedding) are called directly so that
summary tokens can use their own q/k/v projections and so that only their keys and values survive a window.
Memory keys are stored rotated at their final, compact positions: memory is only ever appended to, so the
position of an entry never changes once it is stored.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def apply_rotary_pos_emb(*args):
    # imported on first use: the Qwen2 modeling module (and torch's attention-bias helpers below) take seconds
    # to import, a cost every process that merely lists the LLM registry would otherwise pay
    from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb as rotate

    return rotate(*args)


def causal_lower_right(*args):
    from torch.nn.attention.bias import causal_lower_right as lower_right

    return lower_right(*args)

BEACON_PARAMS = ("q", "k", "v", "o")


class KVMemory:
    """Per-layer keys (rotated) and values kept between windows: [text before the video] + [summary tokens so
    far] + [raw text after the video]."""

    def __init__(self, num_layers: int):
        self.keys: list[Optional[torch.Tensor]] = [None] * num_layers
        self.values: list[Optional[torch.Tensor]] = [None] * num_layers

    def __len__(self) -> int:
        return 0 if self.keys[0] is None else int(self.keys[0].shape[2])

    def get(self, layer: int) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        return self.keys[layer], self.values[layer]

    def append(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> None:
        old_k, old_v = self.keys[layer], self.values[layer]
        self.keys[layer] = key if old_k is None else torch.cat([old_k, key], dim=2)
        self.values[layer] = value if old_v is None else torch.cat([old_v, value], dim=2)


def _project(x: torch.Tensor, plain: nn.Linear, beacon: Optional[nn.Linear],
             beacon_index: Optional[torch.Tensor]) -> torch.Tensor:
    """``plain(x)`` with the rows of summary tokens computed by their own projection instead."""
    out = plain(x)
    if beacon is None or beacon_index is None:
        return out
    return out.index_copy(1, beacon_index, beacon(x.index_select(1, beacon_index)))


def _repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    if groups == 1:
        return x
    b, h, n, d = x.shape
    return x[:, :, None].expand(b, h, groups, n, d).reshape(b, h * groups, n, d)


def _layer_step(layer: nn.Module, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mem_k: Optional[torch.Tensor], mem_v: Optional[torch.Tensor],
                beacon_index: Optional[torch.Tensor], dropout: float):
    """One decoder layer over a window; returns (hidden, keys before RoPE, keys after RoPE, values)."""
    attn = layer.self_attn
    x = layer.input_layernorm(hidden)
    shape = (*x.shape[:2], -1, attn.head_dim)
    q = _project(x, attn.q_proj, getattr(attn, "beacon_q_proj", None), beacon_index).view(shape).transpose(1, 2)
    k = _project(x, attn.k_proj, getattr(attn, "beacon_k_proj", None), beacon_index).view(shape).transpose(1, 2)
    v = _project(x, attn.v_proj, getattr(attn, "beacon_v_proj", None), beacon_index).view(shape).transpose(1, 2)
    q_rot, k_rot = apply_rotary_pos_emb(q, k, cos, sin)
    keys = k_rot if mem_k is None else torch.cat([mem_k, k_rot], dim=2)
    values = v if mem_v is None else torch.cat([mem_v, v], dim=2)
    groups = attn.num_key_value_groups
    # Causal with the memory in front: query i sees the whole memory and window tokens 0..i.
    mask = causal_lower_right(q_rot.shape[2], keys.shape[2]) if mem_k is not None else None
    out = F.scaled_dot_product_attention(q_rot, _repeat_kv(keys, groups), _repeat_kv(values, groups),
                                         attn_mask=mask, is_causal=mem_k is None, dropout_p=dropout,
                                         scale=attn.scaling)
    out = out.transpose(1, 2).reshape(*x.shape[:2], -1)
    hidden = hidden + _project(out, attn.o_proj, getattr(attn, "beacon_o_proj", None), beacon_index)
    hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    return hidden, k, k_rot, v


def run_window(decoder: nn.Module, embeds: torch.Tensor, memory: KVMemory, beacon_mask: Optional[torch.Tensor],
               keep: str, checkpointing: bool = False) -> torch.Tensor:
    """Run ``embeds`` (1, n, D) after ``memory`` through a Qwen2Model's layers; returns normed hidden states.

    ``beacon_mask`` (n,) marks summary tokens. ``keep``: 'all' appends every key/value of the window to the
    memory, 'beacons' only those of summary tokens, re-rotated to compact positions right after the memory.
    """
    start = len(memory)
    n = embeds.shape[1]
    positions = torch.arange(start, start + n, device=embeds.device)[None]
    cos, sin = decoder.rotary_emb(embeds, positions)
    beacon_index = None
    if beacon_mask is not None and bool(beacon_mask.any()):
        beacon_index = torch.nonzero(beacon_mask.to(embeds.device)).flatten()
    if keep == "beacons":
        kept = 0 if beacon_index is None else beacon_index.numel()
        compact = torch.arange(start, start + kept, device=embeds.device)[None]
        cos_c, sin_c = decoder.rotary_emb(embeds, compact)
    hidden = embeds
    dropout = decoder.config.attention_dropout if decoder.training else 0.0
    for i, layer in enumerate(decoder.layers):
        mem_k, mem_v = memory.get(i)
        args = (layer, hidden, cos, sin, mem_k, mem_v, beacon_index, dropout)
        if checkpointing and torch.is_grad_enabled():
            hidden, k, k_rot, v = checkpoint(_layer_step, *args, use_reentrant=False)
        else:
            hidden, k, k_rot, v = _layer_step(*args)
        if keep == "all":
            memory.append(i, k_rot, v)
        elif keep == "beacons" and beacon_index is not None:
            k_b = k.index_select(2, beacon_index)
            memory.append(i, apply_rotary_pos_emb(k_b, k_b, cos_c, sin_c)[0], v.index_select(2, beacon_index))
        elif keep != "beacons":
            raise ValueError(f"keep must be 'all' or 'beacons', got {keep!r}")
    return decoder.norm(hidden)
