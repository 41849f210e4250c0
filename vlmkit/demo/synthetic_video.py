"""Write real media files for tests and demos: mp4/avi/webm through PyAV, GIFs, images, and broken files.

Frames are uint8 arrays (T, H, W, 3).  ``test_pattern`` makes frames that differ from each other and whose
colours are known, so a test can tell which frame a decoder returned.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

# container suffix -> (codec, pixel format) that PyAV writes without extra options
_CODECS = {
    ".mp4": ("libx264", "yuv420p"),
    ".mkv": ("libx264", "yuv420p"),
    ".avi": ("mpeg4", "yuv420p"),
    ".webm": ("libvpx-vp9", "yuv420p"),
}


def test_pattern(num_frames: int, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8: a smooth gradient, a per-frame blue level and a red square moving right."""
    if height % 2 or width % 2:
        raise ValueError(f"height and width must be even for yuv420p, got {height}x{width}")
    rng = np.random.default_rng(seed)
    base_blue = int(rng.integers(0, 64))
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    side = max(2, min(height, width) // 4)
    for t in range(num_frames):
        frames[t, ..., 0] = xx * 255 // max(1, width - 1)
        frames[t, ..., 1] = yy * 255 // max(1, height - 1)
        frames[t, ..., 2] = (base_blue + 7 * t) % 256
        x0 = (t * 3) % max(1, width - side)
        frames[t, 2:2 + side, x0:x0 + side] = (255, 0, 0)
    return frames


def write_video(path: str | Path, frames: np.ndarray, fps: float = 10.0, codec: str | None = None,
                pix_fmt: str | None = None, faststart: bool = False, gop: int | None = None) -> Path:
    """Encode ``frames`` (T, H, W, 3 uint8) into ``path``; codec and pixel format follow the suffix by default.

    ``faststart`` puts the index (moov) before the data, as streaming uploads do; ``gop`` sets the keyframe
    interval so seeking can be exercised.
    """
    path = Path(path)
    frames = _check_frames(frames)
    if codec is None:
        if path.suffix.lower() not in _CODECS:
            raise ValueError(f"no default codec for '{path.suffix}'; pass codec= or use one of {sorted(_CODECS)}")
        codec, default_fmt = _CODECS[path.suffix.lower()]
        pix_fmt = pix_fmt or default_fmt
    options = {"movflags": "faststart"} if faststart else {}
    stream_options = {"g": str(gop)} if gop else {}
    rate = _as_rate(fps)
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=rate, options=stream_options)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt or "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    """An animated GIF (palette colours, so pixels are close to, not equal to, ``frames``)."""
    frames = _check_frames(frames)
    images = [Image.fromarray(f) for f in frames]
    duration_ms = int(round(1000 / fps))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return Path(path)


def write_image(path: str | Path, frame: np.ndarray) -> Path:
    """One (H, W, 3) uint8 frame as an image; the format follows the suffix (use .png for exact pixels)."""
    Image.fromarray(np.asarray(frame, dtype=np.uint8)).save(path)
    return Path(path)


def packet_offsets(path: str | Path) -> list[int]:
    """Byte offset of each video packet in decode order (where a cut leaves whole frames behind)."""
    with av.open(str(path)) as container:
        return [p.pos for p in container.demux(container.streams.video[0]) if p.size]


def write_truncated(src: str | Path, dst: str | Path, keep_frames: int | None = None,
                    keep_fraction: float | None = None) -> Path:
    """Copy ``src`` cut short, like an interrupted download.

    ``keep_frames=k`` cuts exactly before packet k: with a faststart mp4 the header still lists every frame, so
    the file over-reports its frame count but decodes cleanly up to frame k.  ``keep_fraction`` cuts at an
    arbitrary byte, usually inside a packet, which leaves a file that fails to decode.
    """
    if (keep_frames is None) == (keep_fraction is None):
        raise ValueError("give exactly one of keep_frames or keep_fraction")
    data = Path(src).read_bytes()
    if keep_frames is not None:
        offsets = packet_offsets(src)
        if not 0 < keep_frames < len(offsets):
            raise ValueError(f"keep_frames must be in 1..{len(offsets) - 1} for {src}, got {keep_frames}")
        end = offsets[keep_frames]
    else:
        end = int(len(data) * keep_fraction)
    Path(dst).write_bytes(data[:end])
    return Path(dst)


def write_corrupt(dst: str | Path, size: int = 4096, seed: int = 0) -> Path:
    """Random bytes under a video file name: not a container any decoder accepts."""
    Path(dst).write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return Path(dst)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty uint8 array (T, H, W, 3), got {frames.dtype} {frames.shape}")
    return frames


def _as_rate(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)
