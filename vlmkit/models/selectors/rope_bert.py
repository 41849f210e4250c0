"""The temporal encoder of VideoTGB's sampler: a BERT-style encoder over flow embeddings with rotary positions.

- ``FlowEmbedding``: each flow field (2, S, S) -> Conv2d(2, hidden, patch, patch) -> the (S/patch)^2 patch
  responses of every channel -> Linear((S/patch)^2 -> 1): one vector per flow position. A learned BOS is
  prepended, a learned EOS written after the last valid position, then learned position embeddings,
  LayerNorm and dropout.
- ``TextEmbedding``: BERT word + token-type embeddings and LayerNorm; positions come from RoPE instead.
- ``RopeBertLayer``: post-LN BERT layer; self-attention rotates q/k by their positions (RoFormer's interleaved
  pairs), the optional cross-attention rotates the flow queries and the text keys by their own positions.

Layers from ``fusion_layer`` on cross-attend to the question. The published training runs only those upper
layers (``mode: fusion``); its evaluation wrapper runs all of them (``multi_modal``).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def rotary_tables(length: int, dim: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """sin/cos (length, dim) with each frequency repeated for its (even, odd) channel pair."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
    sin, cos = angles.sin().repeat_interleave(2, dim=-1), angles.cos().repeat_interleave(2, dim=-1)
    return sin.to(dtype), cos.to(dtype)


def rotate(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of (B, heads, L, dim) with pairs (0,1), (2,3), ...: x*cos + rot(x)*sin."""
    pairs = torch.stack([-x[..., 1::2], x[..., ::2]], dim=-1).reshape_as(x)
    return x * cos + pairs * sin


class RopeAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float, eps: float):
        super().__init__()
        if hidden % heads or (hidden // heads) % 2:
            raise ValueError(f"hidden_size {hidden} must split into {heads} heads of an even width")
        self.heads, self.head_dim, self.dropout = heads, hidden // heads, dropout
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.output = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, context: Optional[torch.Tensor] = None,
                context_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        source, source_mask = (x, mask) if context is None else (context, context_mask)
        q, k, v = self._split(self.query(x)), self._split(self.key(source)), self._split(self.value(source))
        q = rotate(q, *rotary_tables(q.shape[2], self.head_dim, q.device, q.dtype))
        k = rotate(k, *rotary_tables(k.shape[2], self.head_dim, k.device, k.dtype))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=source_mask[:, None, None, :].bool(),
                                                  dropout_p=self.dropout if self.training else 0.0)
        return self.norm(x + self.drop(self.output(attended.transpose(1, 2).flatten(2))))


class RopeBertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, dropout: float, eps: float, cross: bool):
        super().__init__()
        self.attention = RopeAttention(hidden, heads, dropout, eps)
        self.crossattention = RopeAttention(hidden, heads, dropout, eps) if cross else None
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask, text=None, text_mask=None):
        x = self.attention(x, mask)
        if self.crossattention is not None:
            x = self.crossattention(x, mask, text, text_mask)
        return self.norm(x + self.drop(self.output(F.gelu(self.intermediate(x)))))


class FlowEmbedding(nn.Module):
    def __init__(self, hidden: int, flow_size: int, patch: int, max_positions: int, dropout: float, eps: float):
        super().__init__()
        if flow_size % patch:
            raise ValueError(f"flow_size {flow_size} must be a multiple of flow_patch {patch}")
        self.flow_size = flow_size
        self.projection = nn.Conv2d(2, hidden, kernel_size=patch, stride=patch)
        self.fc = nn.Linear((flow_size // patch) ** 2, 1)
        self.bos = nn.Parameter(torch.randn(hidden) * 0.02)
        self.eos = nn.Parameter(torch.randn(hidden) * 0.02)
        self.positions = nn.Embedding(max_positions, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, flow: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, 2, S, S) flow and valid lengths (B,) -> (B, L + 2, hidden)."""
        batch, length = flow.shape[:2]
        if flow.shape[2:] != (2, self.flow_size, self.flow_size):
            raise ValueError(f"the sampler reads flow (B, L, 2, {self.flow_size}, {self.flow_size}), got "
                             f"{tuple(flow.shape)}; resize the flow or set the sampler's flow_size")
        if length + 2 > self.positions.num_embeddings:
            raise ValueError(f"{length} flow positions + BOS/EOS exceed max_positions={self.positions.num_embeddings}")
        patches = self.projection(flow.flatten(0, 1).to(self.fc.weight.dtype)).flatten(2)  # (B*L, hidden, P)
        tokens = self.fc(patches).squeeze(-1).unflatten(0, (batch, length))
        tokens = torch.cat([self.bos.expand(batch, 1, -1), tokens, tokens.new_zeros(batch, 1, tokens.shape[-1])], 1)
        eos_slot = F.one_hot(lengths.long() + 1, length + 2).unsqueeze(-1).to(tokens.dtype)
        tokens = tokens * (1 - eos_slot) + eos_slot * self.eos
        tokens = tokens + self.positions.weight[: length + 2]
        return self.drop(self.norm(tokens))


class TextEmbedding(nn.Module):
    def __init__(self, vocab_size: int, hidden: int, dropout: float, eps: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if int(ids.max()) >= self.word_embeddings.num_embeddings:
            raise ValueError(f"question token id {int(ids.max())} is outside the sampler's vocabulary "
                             f"({self.word_embeddings.num_embeddings}); tokenize with the sampler's tokenizer")
        return self.drop(self.norm(self.word_embeddings(ids) + self.token_type_embeddings.weight[0]))


class RopeBertSpanEncoder(nn.Module):
    """Flow positions + question -> start/end logits (B, L) over the flow positions."""

    def __init__(self, hidden: int, layers: int, heads: int, intermediate: int, fusion_layer: int,
                 vocab_size: int, max_positions: int, flow_size: int, flow_patch: int, dropout: float,
                 eps: float, mode: str):
        super().__init__()
        if not 0 <= fusion_layer < layers:
            raise ValueError(f"fusion_layer must be in 0..{layers - 1} (layers from it on read the question), "
                             f"got {fusion_layer}")
        # 'fusion' runs only the upper layers, so the lower ones are not built (their index offset is kept for
        # loading BERT weights by layer number).
        self.first_layer = fusion_layer if mode == "fusion" else 0
        self.flow_embedding = FlowEmbedding(hidden, flow_size, flow_patch, max_positions, dropout, eps)
        self.text_embedding = TextEmbedding(vocab_size, hidden, dropout, eps)
        self.layers = nn.ModuleList(RopeBertLayer(hidden, heads, intermediate, dropout, eps, i >= fusion_layer)
                                    for i in range(self.first_layer, layers))
        self.span_head = nn.Linear(hidden, 2)

    def forward(self, flow: torch.Tensor, lengths: torch.Tensor, text_ids: torch.Tensor,
                text_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.flow_embedding(flow, lengths)
        positions = torch.arange(x.shape[1], device=x.device)
        mask = positions[None, :] <= (lengths[:, None] + 1)  # BOS, valid positions, EOS
        text = self.text_embedding(text_ids)
        for layer in self.layers:
            x = layer(x, mask, text, text_mask)
        logits = self.span_head(x[:, 1:-1]).float()
        valid = positions[None, : flow.shape[1]] < lengths[:, None]
        logits = logits.masked_fill(~valid[..., None], torch.finfo(logits.dtype).min)
        return logits[..., 0], logits[..., 1]
