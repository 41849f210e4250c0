"""Train processor: random-resized-crop + horizontal flip, one draw per video (PLLaVA's training transform)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torchvision.transforms import v2

from vlmkit.data.processors.base import FrameProcessor, check_size, interpolation_mode, named_stats
from vlmkit.registry import PROCESSORS


def build(size: int, mean: Sequence[float], std: Sequence[float], interpolation: str,
          scale: Sequence[float] = (0.5, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3),
          flip_prob: float = 0.5) -> FrameProcessor:
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"random_resized_crop: scale must be [low, high] with 0 < low <= high <= 1, got {scale}")
    if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"random_resized_crop: ratio must be [low, high] with 0 < low <= high, got {ratio}")
    if not 0 <= flip_prob <= 1:
        raise ValueError(f"random_resized_crop: flip_prob must be in [0, 1], got {flip_prob}")
    geometry = [v2.RandomResizedCrop(check_size(size), scale=tuple(scale), ratio=tuple(ratio),
                                     interpolation=interpolation_mode(interpolation), antialias=True),
                v2.RandomHorizontalFlip(flip_prob)]
    return FrameProcessor("random_resized_crop", geometry, size, mean, std, train=True)


@PROCESSORS.register("random_resized_crop", aliases=["train_crop_flip"])
def random_resized_crop(size: int = 224, scale: list[float] = [0.5, 1.0],  # noqa: B006 - never mutated
                        ratio: list[float] = [3 / 4, 4 / 3], flip_prob: float = 0.5,  # noqa: B006
                        stats: Literal["clip", "imagenet", "inception"] = "clip",
                        interpolation: str = "bicubic") -> FrameProcessor:
    """Crop a random area (``scale`` of the frame, aspect in ``ratio``), resize to ``size``, flip with
    ``flip_prob``; the same crop and flip for every frame of a video."""
    return build(size, *named_stats(stats), interpolation, scale, ratio, flip_prob)
