"""Frame processors: uint8 frames (T, C, H, W) -> normalised float32 (T, C, size, size), or uint8 (T, C, size,
size) from ``unnormalised()`` when the model normalises on its device (``contracts.normalise_frames``).

Built from torchvision.transforms.v2 applied to the whole clip as one ``tv_tensors.Video``, so a random crop
or flip is drawn once per video and shared by all its frames.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2

from vlmkit.contracts import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ImagePreprocessing, normalise_frames

STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "clip": (CLIP_MEAN, CLIP_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # SigLIP, EVA-CLIP in timm's inception convention
}


def named_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if name not in STATS:
        raise ValueError(f"unknown normalisation statistics '{name}'; accepted: {', '.join(STATS)}")
    return STATS[name]


def interpolation_mode(name: str) -> InterpolationMode:
    try:
        return InterpolationMode[name.upper()]
    except KeyError:
        accepted = ", ".join(m.name.lower() for m in InterpolationMode)
        raise ValueError(f"unknown interpolation '{name}'; accepted: {accepted}") from None


def check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"processor size must be a positive integer (pixels), got {size!r}")
    return size


class FrameProcessor:
    """Geometry transforms on uint8, then scale to [0, 1] and normalise with ``mean`` / ``std``.

    ``__call__(frames, seed=None)``: ``frames`` is uint8 (T, C, H, W) (or one (C, H, W) image, returned as
    T=1).  ``seed`` makes the random draw of a training processor reproducible without touching the global
    torch RNG state.
    """

    def __init__(self, name: str, geometry: Sequence[v2.Transform], size: int, mean: Sequence[float],
                 std: Sequence[float], train: bool):
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"processor '{name}': mean and std need 3 values, std > 0; got {mean}, {std}")
        self.name, self.size, self.train = name, size, train
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.geometry = v2.Compose(list(geometry))
        self.normalise = True
        # an evaluation processor of Resize / CenterCrop only: the same kernels called directly, without v2's
        # per-call dispatch (tv_tensor wrapping, pytree flattening): a third of a small clip's processing cost
        self._kernels = None if train else _direct_kernels(geometry)
        # a seeded random-resized-crop + flip: the same draws from a per-call torch.Generator, without forking and
        # re-seeding the global RNG (most of a small training clip's processing cost) or v2's dispatch
        self._seeded = _seeded_crop_flip(geometry) if train else None

    def unnormalised(self) -> "FrameProcessor":
        """This processor without its last step (scale and normalise): it returns uint8 frames, 4x smaller to pass
        between processes; ``contracts.normalise_frames`` with ``self.stats()`` finishes them."""
        out = copy.copy(self)
        out.normalise = False
        return out

    def stats(self) -> ImagePreprocessing:
        return ImagePreprocessing(self.size, self.mean, self.std)

    def __call__(self, frames: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8:
            raise TypeError(f"processor '{self.name}' takes a uint8 tensor, got "
                            f"{getattr(frames, 'dtype', type(frames).__name__)}")
        if frames.ndim == 3:
            frames = frames.unsqueeze(0)
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"processor '{self.name}' takes frames (T, 3, H, W) with T >= 1, got "
                             f"{tuple(frames.shape)} (decode with layout='TCHW', or permute(0, 3, 1, 2))")
        if self._kernels is not None:
            for kernel in self._kernels:
                frames = kernel(frames)
            return normalise_frames(frames, self.stats()) if self.normalise else frames
        if seed is not None and self._seeded is not None:
            out = self._seeded(frames, seed)
            return normalise_frames(out, self.stats()) if self.normalise else out
        video = tv_tensors.Video(frames)
        if seed is None:
            out = self.geometry(video)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out = self.geometry(video)
        out = out.as_subclass(torch.Tensor)
        return normalise_frames(out, self.stats()) if self.normalise else out

    def __repr__(self) -> str:
        return (f"FrameProcessor({self.name!r}, size={self.size}, train={self.train}, mean={self.mean}, "
                f"std={self.std}{'' if self.normalise else ', unnormalised'})")


def _direct_kernels(geometry: Sequence[v2.Transform]):
    """The torchvision functional calls equal to ``geometry`` when it holds only deterministic Resize and
    CenterCrop transforms (on a plain (T, C, H, W) tensor, what v2 dispatches to for a Video); else None."""
    from functools import partial

    from torchvision.transforms.v2 import functional as F

    kernels = []
    for transform in geometry:
        if type(transform) is v2.Resize:
            kernels.append(partial(F.resize, size=transform.size, interpolation=transform.interpolation,
                                   max_size=transform.max_size, antialias=transform.antialias))
        elif type(transform) is v2.CenterCrop:
            kernels.append(partial(F.center_crop, output_size=transform.size))
        else:
            return None
    return kernels


def _seeded_crop_flip(geometry: Sequence[v2.Transform]):
    """For ``geometry`` = [RandomResizedCrop, RandomHorizontalFlip] exactly: ``f(frames, seed)`` giving what v2
    gives under ``torch.manual_seed(seed)``: the same draws in the same order (RandomResizedCrop.make_params, then
    the flip's ``torch.rand(1)``) from a fresh ``torch.Generator`` seeded alike (the same Mersenne Twister stream),
    then the same kernels.  Any other geometry: None (the v2 pipeline under a forked RNG)."""
    import math

    from torchvision.transforms.v2 import functional as F

    if len(geometry) != 2 or type(geometry[0]) is not v2.RandomResizedCrop \
            or type(geometry[1]) is not v2.RandomHorizontalFlip:
        return None
    crop, flip = geometry
    (low, high), (log_low, log_high) = crop.scale, (float(crop._log_ratio[0]), float(crop._log_ratio[1]))

    def draw(height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int]:
        """torchvision's RandomResizedCrop.make_params with ``generator`` (v0.2x, checked by the tests)."""
        area = height * width
        for _ in range(10):
            target_area = area * torch.empty(1).uniform_(low, high, generator=generator).item()
            aspect_ratio = torch.exp(torch.empty(1).uniform_(log_low, log_high, generator=generator)).item()
            w = int(round(math.sqrt(target_area * aspect_ratio)))
            h = int(round(math.sqrt(target_area / aspect_ratio)))
            if 0 < w <= width and 0 < h <= height:
                top = torch.randint(0, height - h + 1, size=(1,), generator=generator).item()
                left = torch.randint(0, width - w + 1, size=(1,), generator=generator).item()
                return top, left, h, w
        in_ratio = float(width) / float(height)
        if in_ratio < min(crop.ratio):
            w, h = width, int(round(width / min(crop.ratio)))
        elif in_ratio > max(crop.ratio):
            w, h = int(round(height * max(crop.ratio))), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def apply(frames: torch.Tensor, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        top, left, h, w = draw(frames.shape[-2], frames.shape[-1], generator)
        out = F.resized_crop(frames, top, left, h, w, size=crop.size, interpolation=crop.interpolation,
                             antialias=crop.antialias)
        if torch.rand(1, generator=generator) >= flip.p:
            return out
        return F.horizontal_flip(out)
    return apply
