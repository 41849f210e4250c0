"""Video Q-Former over all frames' tokens (Video-LLaMA): ``(B, T, N, D) -> (B, 1, num_query, hidden)``.

A learned frame position embedding (one row per frame, broadcast over the frame's N tokens) is added,
the T*N tokens are flattened into one key/value sequence, and learned video queries cross-attend to it
through a Blip2QFormerModel.  Defaults are Video-LLaMA's: 2 layers with cross-attention in each, 32
queries, ``max_frame_pos`` 32.  More frames than ``max_frame_pos`` either interpolate the position table
linearly (its first and last rows stay the ends of the clip) or raise, as configured.
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from vlmkit.errors import ConfigError
from vlmkit.models.adapters.qformer_common import BLIP2_QFORMER_CONFIG, attach_qformer, qformer_config
from vlmkit.models.stage import DType, VisualStage
from vlmkit.registry import ADAPTERS
from vlmkit.schema import Runtime


@ADAPTERS.register("video_qformer")
class VideoQFormer(VisualStage):
    """Video-LLaMA's video Q-Former: frame position embedding, then queries over all T*N tokens."""

    def __init__(self, in_dim: Runtime[int], num_query: int = 32, num_layers: int = 2,
                 cross_attention_freq: int = 1, max_frame_pos: int = 32,
                 frame_pos_overflow: Literal["interpolate", "error"] = "interpolate",
                 config: Optional[BLIP2_QFORMER_CONFIG] = None,
                 freeze: bool = False, dtype: DType = "float32", gradient_checkpointing: bool = False) -> None:
        super().__init__()
        if max_frame_pos < 1:
            raise ConfigError("video_qformer.max_frame_pos", f"max_frame_pos must be >= 1, got {max_frame_pos}")
        cfg = qformer_config(Blip2QFormerConfig, "video_qformer", in_dim=in_dim, num_layers=num_layers,
                             cross_attention_freq=cross_attention_freq, config=config)
        self.in_dim = in_dim
        self.num_query = num_query
        self.max_frame_pos = max_frame_pos
        self.frame_pos_overflow = frame_pos_overflow
        self.frame_position_embedding = nn.Embedding(max_frame_pos, in_dim)
        attach_qformer(self, Blip2QFormerModel, cfg, num_query, dtype, gradient_checkpointing, freeze)

    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]:
        if in_frames > self.max_frame_pos and self.frame_pos_overflow == "error":
            raise ValueError(self._overflow_message(in_frames))
        return 1, self.num_query

    def _overflow_message(self, frames: int) -> str:
        return (f"video_qformer got {frames} frames but has frame positions for max_frame_pos="
                f"{self.max_frame_pos}; sample at most {self.max_frame_pos} frames, raise max_frame_pos, or set "
                f"frame_pos_overflow: interpolate")

    def frame_positions(self, frames: int) -> torch.Tensor:
        """``(frames, in_dim)`` position rows: the first ``frames`` rows, or the table resampled to ``frames``."""
        table = self.frame_position_embedding.weight
        if frames <= self.max_frame_pos:
            return table[:frames]
        if self.frame_pos_overflow == "error":
            raise ValueError(self._overflow_message(frames))
        resampled = F.interpolate(table.t().unsqueeze(0), size=frames, mode="linear", align_corners=True)
        return resampled.squeeze(0).t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_tokens(x, self.in_dim)
        batch, frames, tokens_per_frame = x.shape[:3]
        x = x.to(self.query_tokens.dtype) + self.frame_positions(frames)[None, :, None, :]
        keys = x.reshape(batch, frames * tokens_per_frame, self.in_dim)
        queries = self.query_tokens.expand(batch, -1, -1)
        hidden = self.qformer(query_embeds=queries, encoder_hidden_states=keys).last_hidden_state
        return hidden.unsqueeze(1)
