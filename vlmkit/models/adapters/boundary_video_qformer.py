"""Video Q-Former whose queries are conditioned on a per-sample boundary (LLMVA-GEBC).

The video Q-Former of Video-LLaMA (frame position embedding, queries over all T*N tokens) with one
addition: a ``BoundaryEmbedding`` of the batch's reference points is added to every query token before
the Q-Former runs. Each GEBC branch (video tokens, other features) has its own embedding.
"""
from __future__ import annotations

from typing import Literal, Optional

import torch

from vlmkit.models.adapters.boundary_embedding import BoundaryEmbedding
from vlmkit.models.adapters.qformer_common import BLIP2_QFORMER_CONFIG
from vlmkit.models.adapters.video_qformer import VideoQFormer
from vlmkit.models.stage import DType
from vlmkit.registry import ADAPTERS
from vlmkit.schema import Runtime


@ADAPTERS.register("boundary_video_qformer", aliases=["gebc_video_qformer"])
class BoundaryVideoQFormer(VideoQFormer):
    """``video_qformer`` + boundary embedding of ``batch[reference_key]`` ((B, num_reference_points)) on the queries."""

    def __init__(self, in_dim: Runtime[int], num_query: int = 32, num_layers: int = 2,
                 cross_attention_freq: int = 1, max_frame_pos: int = 32,
                 frame_pos_overflow: Literal["interpolate", "error"] = "error",
                 config: Optional[BLIP2_QFORMER_CONFIG] = None,
                 reference_key: str = "reference_points", num_reference_points: int = 2,
                 freeze: bool = False, dtype: DType = "float32", gradient_checkpointing: bool = False) -> None:
        super().__init__(in_dim, num_query=num_query, num_layers=num_layers,
                         cross_attention_freq=cross_attention_freq, max_frame_pos=max_frame_pos,
                         frame_pos_overflow=frame_pos_overflow, config=config, freeze=False, dtype=dtype,
                         gradient_checkpointing=gradient_checkpointing)
        self.batch_keys = (reference_key,)
        self.reference_key = reference_key
        self.boundary = BoundaryEmbedding(self.out_dim, num_reference_points).to(self.query_tokens.dtype)
        if freeze:
            self.freeze()

    def forward(self, x: torch.Tensor, **batch: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x, self.in_dim)
        batch_size, frames, tokens_per_frame = x.shape[:3]
        x = x.to(self.query_tokens.dtype) + self.frame_positions(frames)[None, :, None, :]
        keys = x.reshape(batch_size, frames * tokens_per_frame, self.in_dim)
        points = batch[self.reference_key].to(x.device)
        if points.shape[0] != batch_size:
            raise ValueError(f"'{self.reference_key}' holds {points.shape[0]} rows for a batch of {batch_size}")
        queries = self.query_tokens.expand(batch_size, -1, -1) + self.boundary(points)
        hidden = self.qformer(query_embeds=queries, encoder_hidden_states=keys).last_hidden_state
        return hidden.unsqueeze(1)
