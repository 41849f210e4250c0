"""The frames the model receives for a video, as pictures for the page's gallery."""
from __future__ import annotations

import os

import numpy as np

from vlmkit.errors import DataError


def sampled_frames(model, video: str) -> list[np.ndarray]:
    """uint8 (H, W, 3) pictures of the frames ``model`` gets for ``video``: decoded and sampled by the evaluation
    data path (``MediaLoader.decode``: the run's deterministic sampler, then exactly ``num_frames``), resized and
    cropped by the first visual branch's processor. Only the last step, normalisation, is left out so they can be
    shown."""
    if not os.path.exists(video):
        raise DataError(f"{video}: no such video file or frame folder")
    media = model.builder.media
    frames = media.decode(video)
    shown = media.processors[0].unnormalised()(frames) if media.processors else frames
    return [frame.permute(1, 2, 0).contiguous().numpy() for frame in shown]


def describe(frames: list[np.ndarray]) -> str:
    """One line for under the gallery: how many frames the model gets, and their size."""
    if not frames:
        return "no frames"
    height, width = frames[0].shape[:2]
    return f"{len(frames)} frames sampled, {width}x{height} pixels each (what the model receives)"
