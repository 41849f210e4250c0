"""Real media files written once per session with PyAV (and PIL for GIF/PNG), plus broken copies."""
from __future__ import annotations

import pytest

from vlmkit.demo import synthetic_video as sv

NUM_FRAMES, HEIGHT, WIDTH, FPS = 40, 64, 96, 10


def _truncated_that_decord_refuses(root, frames, attempts=6):
    """A faststart h264 mp4 cut mid-packet at 60 %, of an encoding that decord refuses to open.

    x264's bytes vary from run to run (even single-threaded), and so does the packet the cut lands in; for a
    few of those cuts decord opens the file and returns frames without complaint (a decord limitation noted
    in the docs of vlmkit.data.video). The tests here are about what vlmkit does once a backend refuses.
    """
    from vlmkit.data.video import VideoReader
    from vlmkit.errors import DataError

    for attempt in range(attempts):
        source = sv.write_video(root / f"truncation_source{attempt}.mp4", frames, fps=FPS, faststart=True, gop=8)
        cut = sv.write_truncated(source, root / "truncated.mp4", keep_fraction=0.6)
        try:
            VideoReader("decord", fallback=False).read(str(cut), [0, 3])
        except DataError:
            return cut
    pytest.fail(f"decord opened every one of {attempts} truncated encodings")


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
    files["truncated"] = _truncated_that_decord_refuses(root, frames)
    files["corrupt"] = sv.write_corrupt(root / "corrupt.mp4")
    files["empty"] = root / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["missing"] = root / "missing.mp4"
    return files
