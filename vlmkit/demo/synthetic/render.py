"""Scene spec -> frames, a uint8 array (T, H, W, 3) on a plain background.

Shape masks at ``size`` px (8 by default): a filled disc, a filled square, an upward triangle (one pixel pair at
the top widening to the full base) and a plus-shaped cross with arms ``max(2, size // 4)`` px thick.  At 8 px they
differ in many pixels (circle vs square: the 12 corner pixels), which is what a small ViT needs.
"""
from __future__ import annotations

from functools import cache

import numpy as np

from vlmkit.demo.synthetic.scenes import PALETTE, SHAPES, SceneSpec


@cache
def shape_mask(shape: str, size: int) -> np.ndarray:
    """(size, size) bool mask of ``shape``; read-only (cached)."""
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size]
    if shape == "circle":
        mask = (xx - c) ** 2 + (yy - c) ** 2 <= (size / 2) ** 2
    elif shape == "square":
        mask = np.ones((size, size), bool)
    elif shape == "triangle":
        mask = np.abs(xx - c) <= (yy + 1) / 2
    elif shape == "cross":
        half = max(2, size // 4) / 2
        mask = (np.abs(xx - c) < half) | (np.abs(yy - c) < half)
    else:
        raise ValueError(f"unknown shape {shape!r}; accepted: {list(SHAPES)}")
    mask.setflags(write=False)
    return mask


def render(spec: SceneSpec, background: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Frames of ``spec``: objects drawn in order of appearance (they never overlap, see scenes.py)."""
    size, s = spec.frame_size, spec.object_size
    frames = np.empty((spec.num_frames, size, size, 3), np.uint8)
    frames[:] = np.asarray(background, np.uint8)
    for obj in spec.objects:
        mask, colour = shape_mask(obj.shape, s), np.asarray(PALETTE[obj.colour], np.uint8)
        for t in range(obj.appear, spec.num_frames):
            x, y = obj.position(t)
            frames[t, y:y + s, x:x + s][mask] = colour
    return frames
