"""Eval processor: resize the short side to ``size``, center-crop ``size`` x ``size`` (CLIP's processor)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torchvision.transforms import v2

from vlmkit.data.processors.base import FrameProcessor, check_size, interpolation_mode, named_stats
from vlmkit.registry import PROCESSORS


def build(size: int, mean: Sequence[float], std: Sequence[float], interpolation: str) -> FrameProcessor:
    geometry = [v2.Resize(check_size(size), interpolation=interpolation_mode(interpolation), antialias=True),
                v2.CenterCrop(size)]
    return FrameProcessor("resize_center_crop", geometry, size, mean, std, train=False)


@PROCESSORS.register("resize_center_crop", aliases=["center_crop"])
def resize_center_crop(size: int = 224, stats: Literal["clip", "imagenet", "inception"] = "clip",
                       interpolation: str = "bicubic") -> FrameProcessor:
    """Short side to ``size`` then center crop; CLIP statistics by default, ``stats: imagenet`` for ImageNet."""
    return build(size, *named_stats(stats), interpolation)
