"""What frame selectors share: K of the T decoded frames are chosen per video before any encoder runs.

A selector is built with the number of decoded frames (``num_frames``, the data contract) and announces
``num_selected`` (what the encoders see). ``forward(pixels, inputs)`` gets one (B, T, C, H, W) tensor per pixel
branch and the batch entries it lists in ``batch_keys``, and returns a ``Selection``: sorted frame indices
(B, K) and, while it trains, its own loss (which the composite adds to the LM loss).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn


@dataclass
class Selection:
    indices: torch.Tensor            # (B, K) long, ascending per row
    loss: Optional[torch.Tensor] = None


def gather_frames(pixels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) and (B, K) -> (B, K, C, H, W)."""
    index = indices.to(pixels.device).view(*indices.shape, *([1] * (pixels.dim() - 2)))
    return torch.gather(pixels, 1, index.expand(-1, -1, *pixels.shape[2:]))


class FrameSelector(nn.Module):
    """Base class: ``num_frames`` decoded in, ``num_selected`` out; freezing that survives ``train()``."""

    batch_keys: tuple[str, ...] = ()
    tokenizer: Any = None  # a selector that reads the question tokenizes it with this (handed to the data side)

    def __init__(self, num_selected: int, num_frames: int):
        super().__init__()
        if not 1 <= num_selected <= num_frames:
            raise ValueError(f"a selector picks num_selected={num_selected} of the {num_frames} decoded frames; "
                             f"it must be between 1 and {num_frames} (raise sampling.sampler.num_frames)")
        self.num_selected, self.num_frames = num_selected, num_frames
        self._is_frozen = False
        self.model_training = True  # the composite's mode; a frozen selector itself stays in eval mode

    def data_needs(self) -> dict[str, Any]:
        """What the data side must put in the batch for this selector (see vlmkit.data.datasets.tgb_inputs)."""
        return {}

    def freeze(self) -> None:
        self.requires_grad_(False)
        self._is_frozen = True
        self.eval()

    def train(self, mode: bool = True) -> "FrameSelector":
        self.model_training = mode
        return super().train(mode and not self._is_frozen)

    @property
    def learns(self) -> bool:
        """Training mode with trainable weights: the selector then returns its loss."""
        return self.training and any(p.requires_grad for p in self.parameters())

    def forward(self, pixels: Sequence[torch.Tensor], inputs: Mapping[str, Any]) -> Selection:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(pixels, inputs)")
