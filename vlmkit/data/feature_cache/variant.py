"""What a dataset's frames depend on besides the video: frames per video, the frame sampler as this dataset uses
it (training or evaluation rule) and each processor's geometry (size, resize, crop, interpolation) and statistics.
Datasets whose descriptions are equal get the same frames from a video, so they share cached features; the cache
stores the description under its digest (a "variant") and a dataset with another one is refused, naming what
differs.

A training dataset whose frames change from epoch to epoch cannot be cached: a sampler that draws random frames
(``segment_random``: it needs a seed) or training augmentation (``model.sampling.train_augment``: a random resized
crop and flip). ``random_draws`` names the setting.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Optional

# a long video at a common rate: a sampler that draws at random needs rng for it
PROBE_FRAMES, PROBE_FPS = 997, 30.0


def describe(media: Any, positions: Sequence[int]) -> dict[str, Any]:
    """The variant of a dataset's ``MediaLoader`` for the pixel branches at ``positions`` of ``pixel_values``."""
    processors = {}
    for position in positions:
        proc = media.processors[position]
        processors[str(position)] = {"processor": proc.name, "size": proc.size, "mean": list(proc.mean),
                                     "std": list(proc.std), "geometry": " ".join(repr(proc.geometry).split())}
    return {"frames": media.num_frames, "sampler": repr(media.sampler), "processors": processors}


def digest(description: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


def random_draws(media: Any) -> Optional[str]:
    """Why the frames this dataset gives a video change between reads (naming the setting), or None."""
    if getattr(media, "train", False):
        try:
            media.sampler(PROBE_FRAMES, PROBE_FPS, rng=None)
        except ValueError as err:
            if "rng" not in str(err):
                raise
            return (f"model.sampling.sampler ({media.sampler.name}) draws random training frames, so a video's "
                    f"features change every epoch; choose a deterministic sampler (linspace, segment_middle, fps) "
                    f"to cache training features")
        random_processors = [p.name for p in media.processors if p.train]
        if random_processors:
            return (f"model.sampling.train_augment is true: training frames get a random crop and flip "
                    f"({', '.join(random_processors)}), so a video's features change every epoch; set "
                    f"model.sampling.train_augment=false to cache training features")
    return None


def differences(cached: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two variant descriptions, one line each."""
    lines = []
    if cached.get("frames") != current.get("frames"):
        lines.append(f"frames per video: {cached.get('frames')} in the cache, {current.get('frames')} now "
                     f"(model.sampling.sampler)")
    if cached.get("sampler") != current.get("sampler"):
        lines.append(f"frame sampler: {cached.get('sampler')} in the cache, {current.get('sampler')} now")
    old, new = cached.get("processors", {}), current.get("processors", {})
    for position in sorted(set(old) | set(new)):
        a, b = old.get(position, {}), new.get(position, {})
        for key in ("size", "processor", "mean", "std", "geometry"):
            if a.get(key) != b.get(key):
                label = "image size" if key == "size" else key
                lines.append(f"pixel branch {position}: {label} {a.get(key)} in the cache, {b.get(key)} now")
    return lines
