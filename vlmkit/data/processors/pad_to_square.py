"""Eval processor: pad to a square with the mean colour, then resize (LLaVA's ``image_aspect_ratio: pad``)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from vlmkit.data.processors.base import FrameProcessor, check_size, interpolation_mode, named_stats
from vlmkit.registry import PROCESSORS


class PadToSquare(v2.Transform):
    """Centre the frames on a square canvas filled with ``fill`` (uint8 RGB), as LLaVA's expand2square."""

    def __init__(self, fill: Sequence[int]):
        super().__init__()
        self.fill = [int(f) for f in fill]

    def transform(self, inpt: torch.Tensor, params: dict) -> torch.Tensor:
        height, width = inpt.shape[-2:]
        side = max(height, width)
        left, top = (side - width) // 2, (side - height) // 2
        padding = [left, top, side - width - left, side - height - top]
        return F.pad(inpt, padding, fill=self.fill) if side != min(height, width) else inpt


def build(size: int, mean: Sequence[float], std: Sequence[float], interpolation: str) -> FrameProcessor:
    fill = [int(m * 255) for m in mean]  # normalises to ~0, the "no information" colour
    geometry = [PadToSquare(fill),
                v2.Resize((check_size(size), size), interpolation=interpolation_mode(interpolation),
                          antialias=True)]
    return FrameProcessor("pad_to_square", geometry, size, mean, std, train=False)


@PROCESSORS.register("pad_to_square", aliases=["expand2square"])
def pad_to_square(size: int = 224, stats: Literal["clip", "imagenet", "inception"] = "clip",
                  interpolation: str = "bicubic") -> FrameProcessor:
    """Keep the whole frame: pad the short side with the mean colour, resize to ``size`` x ``size``."""
    return build(size, *named_stats(stats), interpolation)
