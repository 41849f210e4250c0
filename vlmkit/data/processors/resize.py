"""Eval processor: resize to ``size`` x ``size`` without cropping (aspect not kept; VideoGPT+'s video branch)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torchvision.transforms import v2

from vlmkit.data.processors.base import FrameProcessor, check_size, interpolation_mode, named_stats
from vlmkit.registry import PROCESSORS


def build(size: int, mean: Sequence[float], std: Sequence[float], interpolation: str) -> FrameProcessor:
    geometry = [v2.Resize((check_size(size), size), interpolation=interpolation_mode(interpolation),
                          antialias=True)]
    return FrameProcessor("resize", geometry, size, mean, std, train=False)


@PROCESSORS.register("resize", aliases=["resize_no_crop"])
def resize(size: int = 224, stats: Literal["clip", "imagenet", "inception"] = "clip",
           interpolation: str = "bicubic") -> FrameProcessor:
    """Squash every frame to ``size`` x ``size``, then normalise."""
    return build(size, *named_stats(stats), interpolation)
