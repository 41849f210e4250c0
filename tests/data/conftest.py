"""Real media files written once per session with PyAV (and PIL for GIF/PNG), plus broken copies."""
from __future__ import annotations

import pytest

from vlmkit.data import synthetic_video as sv

NUM_FRAMES, HEIGHT, WIDTH, FPS = 40, 64, 96, 10


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    frames = sv.test_pattern(NUM_FRAMES, HEIGHT, WIDTH)
    files = {"frames": frames}
    files["mp4"] = sv.write_video(root / "clip.mp4", frames, fps=FPS, faststart=True, gop=8)
    files["mkv"] = sv.write_video(root / "clip.mkv", frames, fps=FPS, gop=8)
    files["avi"] = sv.write_video(root / "clip.avi", frames, fps=FPS, gop=8)
    files["webm"] = sv.write_video(root / "clip.webm", frames, fps=FPS, gop=8)
    files["gif"] = sv.write_gif(root / "clip.gif", frames[:10], fps=5)
    files["png"] = sv.write_image(root / "frame.png", frames[3])
    # header lists 40 frames, data holds 15 whole frames (an interrupted faststart download)
    files["over_reported"] = sv.write_truncated(files["mp4"], root / "over_reported.mp4", keep_frames=15)
    files["truncated"] = sv.write_truncated(files["mp4"], root / "truncated.mp4", keep_fraction=0.6)
    files["corrupt"] = sv.write_corrupt(root / "corrupt.mp4")
    files["empty"] = root / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["missing"] = root / "missing.mp4"
    return files
