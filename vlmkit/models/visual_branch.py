"""One visual branch: an encoder followed by adapter/pooler stages, ending at the LLM's width."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from vlmkit.registry import ENCODERS, STAGES
from vlmkit.schema import Component, ComponentList, Runtime, signature_of


class VisualBranch(nn.Module):
    """``encoder`` then ``stages`` (Q-Formers, projectors, poolers, in order); widths are chained automatically.

    Every stage gets the previous stage's width as ``in_dim``; a stage that asks for ``out_dim`` (a projector)
    gets the LLM's hidden size. The last stage must end at that width.
    """

    def __init__(self, encoder: Component("encoders"), stages: ComponentList("stages") = (),
                 *, llm_width: Runtime[int], path: Runtime[str] = "model.branches[0]"):
        super().__init__()
        self.encoder = ENCODERS.build(encoder, path=f"{path}.encoder")
        built, width = [], self.encoder.out_dim
        for i, stage_cfg in enumerate(stages):
            name = STAGES.name_of(stage_cfg, f"{path}.stages[{i}]")
            offered = {"in_dim": width, "out_dim": llm_width}
            params = signature_of(STAGES.get(name)).parameters
            stage = STAGES.build(stage_cfg, path=f"{path}.stages[{i}]",
                                 **{k: v for k, v in offered.items() if k in params})
            built.append(stage)
            width = stage.out_dim
        if width != llm_width:
            raise ValueError(f"{path}: the branch ends at width {width} but the LLM's hidden size is {llm_width}; "
                             f"end the stages with a projector (linear, mlp_gelu, llava_projector)")
        self.stages = nn.ModuleList(built)

    @property
    def preprocessing(self):
        return self.encoder.preprocessing

    def tokens(self, frames: int) -> int:
        """Visual tokens this branch gives one video of ``frames`` frames (no forward pass needed)."""
        t, n = self.encoder.out_tokens(self.encoder.tokens_per_frame, frames)
        for stage in self.stages:
            t, n = stage.out_tokens(n, t)
        return t * n

    def forward(self, pixels: torch.Tensor, text_ids: Optional[torch.Tensor] = None,
                text_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, T, C, H, W) pixels -> (B, K, llm_width) visual tokens."""
        x = self.encoder(pixels)
        for stage in self.stages:
            x = stage(x, text_ids=text_ids, text_mask=text_mask) if stage.reads_text else stage(x)
        return x.reshape(x.shape[0], -1, x.shape[-1])


