"""Frames -> mp4 bytes in memory (PyAV, libx264, yuv420p), so one encode feeds both the file and the shard."""
from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np


def encode_mp4(frames: np.ndarray, fps: int = 8, crf: int = 18, preset: str = "medium") -> bytes:
    """Encode (T, H, W, 3) uint8 frames (H, W even) as an H.264 mp4.

    One encoder thread: for 32x32 clips x264's thread start-up costs more than it saves (4x slower with the
    default threads), and the generator parallelises across videos instead.  No B-frames and no lookahead:
    decode order equals display order, and the encoder starts faster; the pixel error stays ~1.4/255.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps),
                                      options={"crf": str(crf), "preset": preset, "threads": "1",
                                               "x264-params": "bframes=0:rc-lookahead=0"})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()
