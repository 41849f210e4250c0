"""BLIP-2 Q-Former applied per frame: ``(B, T, N, D) -> (B, T, num_query, hidden)``.

Built on transformers' Blip2QFormerModel (cross-attention in layers ``i % cross_attention_freq == 0``),
plus the learned query tokens that BLIP-2 keeps outside it.  Defaults are the published BLIP-2 sizes
(BERT-base, 12 layers, cross-attention every 2nd layer, 32 queries).
"""
from __future__ import annotations

from typing import Optional

import torch
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from vlmkit.models.adapters.qformer_common import BLIP2_QFORMER_CONFIG, attach_qformer, qformer_config
from vlmkit.models.stage import DType, VisualStage
from vlmkit.registry import ADAPTERS
from vlmkit.schema import Runtime


@ADAPTERS.register("qformer", aliases=["blip2_qformer"])
class QFormer(VisualStage):
    """BLIP-2 Q-Former: learned queries cross-attend to each frame's tokens."""

    def __init__(self, in_dim: Runtime[int], num_query: int = 32, num_layers: int = 12,
                 cross_attention_freq: int = 2, config: Optional[BLIP2_QFORMER_CONFIG] = None, freeze: bool = False,
                 dtype: DType = "float32", gradient_checkpointing: bool = False) -> None:
        super().__init__()
        cfg = qformer_config(Blip2QFormerConfig, "qformer", in_dim=in_dim, num_layers=num_layers,
                             cross_attention_freq=cross_attention_freq, config=config)
        self.in_dim = in_dim
        self.num_query = num_query
        attach_qformer(self, Blip2QFormerModel, cfg, num_query, dtype, gradient_checkpointing, freeze)

    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]:
        return in_frames, self.num_query

    def query(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B', N, D)`` -> ``(B', num_query, hidden)``: the queries read one token set each."""
        tokens = tokens.to(self.query_tokens.dtype)
        queries = self.query_tokens.expand(tokens.shape[0], -1, -1)
        return self.qformer(query_embeds=queries, encoder_hidden_states=tokens).last_hidden_state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x, self.in_dim)
        batch, time = x.shape[:2]
        return self.query(x.flatten(0, 1)).unflatten(0, (batch, time))
