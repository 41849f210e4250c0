import numpy as np
import pytest
import torch

from vlmkit.data import video as video_module
from vlmkit.data.video import VideoReader, frame_range
from vlmkit.errors import DataError
from vlmkit.registry import SAMPLERS

NUM_FRAMES, HEIGHT, WIDTH, FPS = 40, 64, 96, 10  # as written by conftest.media

INDICES = [0, 7, 3, 39, 20, 20, 8, 31]  # unsorted, repeated, first and last


def reader(backend, fallback=False, **kw):
    return VideoReader(backend, fallback=fallback, **kw)


@pytest.mark.parametrize("container", ["mp4", "mkv", "avi", "webm"])
def test_backends_return_identical_pixels_and_timestamps(media, container):
    by_decord = reader("decord").read(media[container], INDICES)
    by_pyav = reader("pyav").read(media[container], INDICES)
    assert (by_decord.backend, by_pyav.backend) == ("decord", "pyav")
    assert by_decord.frames.shape == (len(INDICES), 3, HEIGHT, WIDTH)
    assert by_decord.frames.dtype == torch.uint8
    # exact equality: both use FFmpeg's swscale yuv420p -> rgb24 with default flags
    assert torch.equal(by_decord.frames, by_pyav.frames)
    assert by_decord.timestamps == pytest.approx(by_pyav.timestamps, abs=1e-6)
    assert by_pyav.timestamps == pytest.approx([i / FPS for i in INDICES], abs=1e-6)
    assert by_decord.indices == by_pyav.indices == INDICES


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_frames_are_the_requested_ones(media, backend):
    clip = reader(backend, layout="THWC").read(media["mp4"], INDICES)
    source = media["frames"].astype(np.float32)
    decoded = clip.frames.numpy().astype(np.float32)
    # lossy codec: identify each decoded frame as the closest source frame
    errors = ((decoded[:, None] - source[None]) ** 2).mean(axis=(2, 3, 4))
    assert errors.argmin(axis=1).tolist() == INDICES
    assert np.abs(decoded - source[INDICES]).mean() < 3.0


def test_layouts_are_views_of_the_same_pixels(media):
    thwc = reader("pyav", layout="THWC").read(media["mp4"], [1, 2]).frames
    tchw = reader("pyav", layout="TCHW").read(media["mp4"], [1, 2]).frames
    assert thwc.shape == (2, HEIGHT, WIDTH, 3) and tchw.shape == (2, 3, HEIGHT, WIDTH)
    assert torch.equal(thwc.permute(0, 3, 1, 2), tchw)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_info_and_thread_limit(media, backend):
    info = reader(backend).info(media["mp4"])
    assert (info.num_frames, info.fps, info.duration) == (NUM_FRAMES, FPS, NUM_FRAMES / FPS)
    one = reader(backend, num_threads=1).read(media["mp4"], INDICES).frames
    two = reader(backend, num_threads=2).read(media["mp4"], INDICES).frames
    assert torch.equal(one, two)


def test_frame_range_follows_the_mvbench_rule():
    assert frame_range(100, 25.0) == (0, 99)
    assert frame_range(100, 25.0, 0.5, 2.02) == (12, 50)   # round(12.5) = 12 (banker's), round(50.5) = 50
    assert frame_range(100, 25.0, 1.0, 10.0) == (25, 99)   # end clamped to the last frame
    with pytest.raises(ValueError, match="before start"):
        frame_range(100, 25.0, 2.0, 1.0)
    with pytest.raises(ValueError, match="select no frame"):
        frame_range(100, 25.0, 5.0, 6.0)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_sample_within_bounds_in_seconds(media, backend):
    sampler = SAMPLERS.build({"name": "linspace", "num_frames": 5})
    clip = reader(backend).sample(media["mp4"], sampler, start=1.0, end=2.0)
    assert clip.indices == [10, 12, 15, 17, 20]
    assert clip.timestamps == pytest.approx([1.0, 1.2, 1.5, 1.7, 2.0], abs=1e-6)
    with pytest.raises(DataError, match="clip.mp4.*select no frame"):
        reader(backend).sample(media["mp4"], sampler, start=10.0, end=12.0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_over_reported_frame_count_is_resampled_not_hung(media, backend):
    header = reader("pyav").info(media["over_reported"]).num_frames
    assert header == NUM_FRAMES  # the container claims all 40 frames ...
    linspace = SAMPLERS.build({"name": "linspace", "num_frames": 8})
    counts = []  # the frame count each sampling saw

    def sampler(num_frames, fps, rng=None):
        counts.append(num_frames)
        return linspace(num_frames, fps, rng=rng)

    clip = reader(backend).sample(media["over_reported"], sampler)
    # Not hung: PyAV samples on the header's count, then once more on the verified one, and stops there;
    # decord verifies the count when it opens the file and samples once.
    assert counts == {"decord": [15], "pyav": [NUM_FRAMES, 15]}[backend]
    assert clip.info.num_frames == 15  # ... but 15 decode: sampled again over those
    assert clip.indices == np.linspace(0, 14, 8, dtype=int).tolist()
    assert clip.backend == backend and clip.fallback_reason is None
    with pytest.raises(DataError, match="over_reported.mp4"):
        reader(backend, fallback=True).read(media["over_reported"], [0, 30])


def test_fallback_when_the_primary_backend_fails(media):
    # decord refuses a file cut mid-packet at open time; PyAV decodes its first frames
    clip = VideoReader("decord").read(media["truncated"], [0, 3])
    assert clip.backend == "pyav"
    assert "decord" in clip.fallback_reason
    with pytest.raises(DataError, match="truncated.mp4"):
        VideoReader("decord", fallback=False).read(media["truncated"], [0, 3])


def test_fallback_from_pyav_to_decord(media, monkeypatch):
    def broken(path, num_threads):
        raise DataError(f"{path}: simulated PyAV failure")
    monkeypatch.setitem(video_module._OPENERS, "pyav", broken)
    clip = VideoReader("pyav").read(media["mp4"], [1])
    assert clip.backend == "decord" and "simulated PyAV failure" in clip.fallback_reason
    with pytest.raises(DataError, match="simulated PyAV failure"):
        VideoReader("pyav", fallback=False).read(media["mp4"], [1])


@pytest.mark.parametrize("fallback", [False, True])
@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize("fault, reason", [
    ("missing", "file not found"), ("empty", "empty file"), ("corrupt", "could not be decoded"),
    ("truncated", "could not be decoded")])
def test_bad_files_raise_data_error_naming_the_file(media, backend, fallback, fault, reason):
    sampler = SAMPLERS.build({"name": "linspace", "num_frames": 8})
    with pytest.raises(DataError, match=reason) as err:
        VideoReader(backend, fallback=fallback).sample(media[fault], sampler)
    assert str(media[fault]) in str(err.value)


def test_gif_is_an_n_frame_video(media):
    clip = VideoReader("decord").sample(media["gif"], SAMPLERS.build({"name": "linspace", "num_frames": 4}))
    assert clip.backend == "pyav"  # decord cannot read GIF metadata; GIFs go to PyAV directly
    assert (clip.info.num_frames, clip.info.fps) == (10, 5.0)
    assert clip.indices == [0, 3, 6, 9]
    source = torch.from_numpy(media["frames"][[0, 3, 6, 9]]).permute(0, 3, 1, 2).float()
    assert (clip.frames.float() - source).abs().mean() < 8  # palette quantisation


def test_image_is_a_one_frame_video(media):
    clip = VideoReader().sample(media["png"], SAMPLERS.build({"name": "segment_middle", "num_frames": 4}))
    assert clip.backend == "image" and clip.info.num_frames == 1 and clip.indices == [0, 0, 0, 0]
    expected = torch.from_numpy(media["frames"][3]).permute(2, 0, 1)
    assert all(torch.equal(frame, expected) for frame in clip.frames)


def test_paths_go_through_iopath(media):
    from iopath.common.file_io import PathHandler, g_pathmgr

    class TestStore(PathHandler):
        PREFIX = "vlmkit-test-store://"

        def _get_supported_prefixes(self):
            return [self.PREFIX]

        def _get_local_path(self, path, **kwargs):
            return str(media["mp4"].parent / path[len(self.PREFIX):])

        def _exists(self, path, **kwargs):
            return (media["mp4"].parent / path[len(self.PREFIX):]).exists()

        def _isdir(self, path, **kwargs):
            return False

    if TestStore.PREFIX not in g_pathmgr._path_handlers:
        g_pathmgr.register_handler(TestStore())
    clip = VideoReader("pyav").read("vlmkit-test-store://clip.mp4", [2])
    assert torch.equal(clip.frames, VideoReader("pyav").read(media["mp4"], [2]).frames)
    with pytest.raises(DataError, match="vlmkit-test-store://nothing.mp4: file not found"):
        VideoReader("pyav").read("vlmkit-test-store://nothing.mp4", [0])


def test_reader_rejects_bad_settings():
    with pytest.raises(ValueError, match="accepted: decord, pyav"):
        VideoReader("opencv")
    with pytest.raises(ValueError, match="layout"):
        VideoReader(layout="CTHW")


def test_pyav_reuses_one_conversion_context_per_thread(media, tmp_path, monkeypatch):
    """PyAV's own ``to_ndarray(format="rgb24")`` builds a swscale context per frame (most of a small clip's
    cost); the reader keeps one per thread. Same pixels as PyAV's own call, also when the frame size changes
    between files in one thread, and a separate context in another thread."""
    import threading

    import av
    from av.video.reformatter import VideoReformatter

    created = []

    def counting():
        created.append(threading.get_ident())
        return VideoReformatter()

    monkeypatch.setattr("av.video.reformatter.VideoReformatter", counting)
    monkeypatch.setattr(video_module, "_reformatters", threading.local())
    small = sv_write(tmp_path / "small.mp4", media["frames"][:12, :32, :48])

    def pyav_own(path, indices):
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return torch.from_numpy(np.stack([frames[i] for i in indices]))

    def read(path, indices):
        return reader("pyav", layout="THWC").read(path, indices).frames

    for path, indices in ((media["mp4"], INDICES), (small, [0, 5, 11]), (media["mp4"], [2, 9])):
        assert torch.equal(read(path, indices), pyav_own(path, indices)), path
    assert len(created) == 1   # 13 frames converted with one context
    other = []
    worker = threading.Thread(target=lambda: other.append(read(small, [1, 2])))
    worker.start()
    worker.join()
    assert torch.equal(other[0], pyav_own(small, [1, 2]))
    assert len(created) == 2 and created[0] != created[1]


def sv_write(path, frames):
    from vlmkit.demo import synthetic_video as sv

    return sv.write_video(path, frames, fps=FPS, faststart=True, gop=4)


def test_a_worker_forked_after_the_main_process_decoded_with_pyav_still_decodes(media):
    """A DataLoader worker is forked from a main process that may already have converted frames (an in-process
    evaluation, the warm-up of a benchmark): the conversion context it inherits must work there (a context with
    its own thread pool waited forever for threads that fork does not copy)."""
    from torch.utils.data import DataLoader

    expected = reader("pyav").read(media["mp4"], INDICES).frames  # this thread's context now exists

    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return reader("pyav").read(media["mp4"], INDICES).frames

    loader = DataLoader(Clips(), batch_size=None, num_workers=1, multiprocessing_context="fork", timeout=60)
    for frames in loader:
        assert torch.equal(frames, expected)
