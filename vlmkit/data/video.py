"""Video decoding: decord and PyAV behind one interface, with fallback from one to the other.

Frames come back as uint8 torch tensors, ``(T, C, H, W)`` by default (``layout="TCHW"``, a permuted view of the
decoder's ``(T, H, W, C)`` memory, i.e. channels-last, which torchvision's uint8 resize handles fastest) or
``(T, H, W, C)`` with ``layout="THWC"``.  Both backends give identical pixels for the same indices (both use
FFmpeg's swscale yuv -> rgb24 with the same defaults; tests/data/test_video_decoding.py checks equality).

Images are 1-frame videos (nominal fps 1.0); GIFs are decoded by PyAV (decord cannot read GIF metadata).
Paths go through iopath's PathManager, so registered URI handlers work.  Every failure is a
``vlmkit.errors.DataError`` that names the file and the reason.

A container may claim more frames than it holds (an interrupted faststart download keeps the full index).
Decoding then ends early; the reader re-samples on the frame count it verified instead of hanging or crashing.
"""
from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import numpy as np
import torch

from vlmkit.errors import DataError

Backend = Literal["decord", "pyav"]
Layout = Literal["THWC", "TCHW"]
BACKENDS: tuple[str, ...] = ("decord", "pyav")
IMAGE_FPS = 1.0  # an image is a 1-frame video lasting one second


@dataclass(frozen=True)
class VideoInfo:
    """What the container says (or, after a short read, what was verified) about one video stream."""

    path: str
    num_frames: int
    fps: float
    height: int | None            # None until a frame is decoded (decord does not report the size up front)
    width: int | None
    backend: str

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


@dataclass
class Clip:
    """Decoded frames with the indices and timestamps (seconds) they came from."""

    frames: torch.Tensor          # uint8, (T, C, H, W) or (T, H, W, C): see ``layout``
    indices: list[int]
    timestamps: list[float] | None  # None from a reader made with timestamps=False
    info: VideoInfo               # num_frames is the verified count when the header over-reported
    layout: str
    backend: str                  # which backend actually decoded the frames
    fallback_reason: str | None = None  # why the primary backend was not used, if it was not


class FrameCountMismatch(DataError):
    """The stream ended before a requested index: the header over-reported the frame count."""

    def __init__(self, path: str, header: int, decodable: int):
        self.path, self.header, self.decodable = path, header, decodable
        super().__init__(f"{path}: header reports {header} frames but only {decodable} could be decoded")


class _OpenVideo(Protocol):
    info: VideoInfo

    # (T, H, W, 3) uint8 and seconds (None unless ``timestamps``)
    def read(self, indices: Sequence[int], timestamps: bool = True) -> tuple[np.ndarray, list[float] | None]: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------- backends
class DecordVideo:
    """decord's random-access reader (seeks to the keyframe before each request).

    Known limitation: for some mp4 files cut short mid-packet decord opens the file and returns frames without
    an error; PyAV reports such files. Use ``backend: pyav`` for data that may hold interrupted downloads.
    """

    name = "decord"

    def __init__(self, path: str, num_threads: int):
        try:
            import decord
        except ImportError as err:
            raise DataError(f"{path}: decord is not installed ({err}); use backend 'pyav'") from err
        self._decord = decord
        self.path = path
        try:
            self._reader = decord.VideoReader(path, num_threads=num_threads)  # ctx: cpu(0), the default
            fps = float(self._reader.get_avg_fps())
        except (decord.DECORDError, RuntimeError, IndexError) as err:
            raise DataError(f"{path}: decord cannot open it: {_first_line(err)}") from err
        self.info = VideoInfo(path, len(self._reader), fps, None, None, self.name)

    def read(self, indices: Sequence[int], timestamps: bool = True) -> tuple[np.ndarray, list[float] | None]:
        bad = [i for i in indices if not 0 <= i < self.info.num_frames]
        if bad:
            raise IndexError(f"{self.path}: frame indices {bad[:5]} outside 0..{self.info.num_frames - 1}")
        try:
            frames = self._reader.get_batch(list(indices)).asnumpy()
            stamps = self._reader.get_frame_timestamp(list(indices))[:, 0] if timestamps else None
        except IndexError as err:  # decord verified fewer frames than it first listed
            raise FrameCountMismatch(self.path, self.info.num_frames, len(self._reader)) from err
        except (self._decord.DECORDError, RuntimeError) as err:
            raise DataError(f"{self.path}: decord failed to decode frames {list(indices)[:8]}: "
                            f"{_first_line(err)}") from err
        return frames, None if stamps is None else [round(float(s), 6) for s in stamps]

    def close(self) -> None:
        del self._reader


class PyAVVideo:
    """PyAV (FFmpeg) reader with keyframe seeking.

    One demux pass (no decoding) lists the packets' timestamps; sorted, they map a frame index to its pts
    exactly, also for variable frame rates.  Reading jumps to the keyframe before a wanted frame when that
    skips frames, decodes forward, and converts only the wanted frames to RGB.
    """

    name = "pyav"

    def __init__(self, path: str, num_threads: int):
        import av

        self._av = av
        self.path = path
        try:
            self._container = av.open(path)
        except (av.FFmpegError, OSError, ValueError) as err:
            raise DataError(f"{path}: PyAV cannot open it: {_first_line(err)}") from err
        if not self._container.streams.video:
            self._container.close()
            raise DataError(f"{path}: no video stream in the container")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO" if num_threads != 1 else "SLICE"
        stream.codec_context.thread_count = num_threads
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            self.close()
            raise DataError(f"{path}: the video stream has no frame rate")
        self._start = stream.start_time or 0
        self._table: _PacketTable | None = None
        # the header's count when it has one (webm and some GIFs do not: count packets then)
        num_frames = stream.frames or len(self._packets().pts)
        self.info = VideoInfo(path, num_frames, float(rate), stream.height, stream.width, self.name)

    def _packets(self) -> "_PacketTable":
        if self._table is None:
            pts, keys, error = [], [], None
            try:
                for packet in self._container.demux(self._stream):
                    if packet.size:
                        pts.append(packet.pts)
                        if packet.is_keyframe:
                            keys.append(packet.pts)
            except self._av.FFmpegError as err:  # a cut or damaged file: keep what was listed
                error = _first_line(err)
            self._table = _PacketTable(pts, keys, error)
        return self._table

    def read(self, indices: Sequence[int], timestamps: bool = True) -> tuple[np.ndarray, list[float] | None]:
        bad = [i for i in indices if i < 0]
        if bad:
            raise IndexError(f"{self.path}: negative frame indices {bad[:5]}")
        table = self._packets()
        if max(indices) >= len(table.pts):
            if table.error:
                raise DataError(f"{self.path}: the file ends after {len(table.pts)} frames ({table.error})")
            raise FrameCountMismatch(self.path, self.info.num_frames, len(table.pts))
        try:
            decoded = self._decode(sorted(set(indices)), table)
        except self._av.FFmpegError as err:
            raise DataError(f"{self.path}: PyAV failed to decode: {_first_line(err)}") from err
        try:
            frames = np.stack([decoded[i][0] for i in indices])
        except ValueError as err:
            raise DataError(f"{self.path}: frames change size mid-stream ({err})") from err
        return frames, [decoded[i][1] for i in indices] if timestamps else None

    def _decode(self, targets: list[int], table: "_PacketTable") -> dict[int, tuple[np.ndarray, float]]:
        wanted = set(targets)
        decoded: dict[int, tuple[np.ndarray, float]] = {}
        frames, position = None, -1
        for target in targets:
            if target in decoded:
                continue
            key = table.keyframe_before(target)
            if frames is None or key > position + 1:  # a keyframe lies ahead: jump instead of decoding there
                self._container.seek(table.pts_of(key), stream=self._stream, backward=True, any_frame=False)
                frames, position = self._container.decode(self._stream), key - 1
            for frame in frames:
                position = table.index_of(frame.pts, self.path) if table.timed else position + 1
                if position in wanted and position not in decoded:
                    decoded[position] = (_to_rgb(frame), self._seconds(frame))
                if position >= target:
                    break
            if target not in decoded:  # the stream ended (or the seek overshot) before the target
                raise DataError(f"{self.path}: frame {target} could not be decoded (the stream ended at frame "
                                f"{position}{'; ' + table.error if table.error else ''})")
        return decoded

    def _seconds(self, frame) -> float:
        return round(float((frame.pts - self._start) * self._stream.time_base), 6)

    def close(self) -> None:
        self._container.close()


_reformatters = threading.local()


def _to_rgb(frame) -> np.ndarray:
    """``frame.to_ndarray(format="rgb24")`` with this thread's swscale context: the same pixels, but
    ``VideoFrame.to_ndarray`` builds a new context per frame, which on a 32 px frame costs ~8x its decoding
    (small demo clips: 3.0 -> 0.87 ms CPU per 8-frame read). ``sws_getCachedContext`` rebuilds it only when
    the size or format changes; one per thread because a context is not safe to share. One slice thread
    (``threads=1``): with PyAV's default (0, a thread pool per context) a DataLoader worker forked after the
    main process had converted a frame waited forever for pool threads that fork does not copy, and on 32 px
    frames the pool cost CPU (1.6 against 1.0 ms per 8-frame read; the same at 320x240)."""
    reformatter = getattr(_reformatters, "current", None)
    if reformatter is None:
        from av.video.reformatter import VideoReformatter

        reformatter = _reformatters.current = VideoReformatter()
    return reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()


class _PacketTable:
    """Packet timestamps of one stream in presentation order: frame index <-> pts, keyframe indices."""

    def __init__(self, pts: list, keys: list, error: str | None):
        self.error = error
        if any(p is None for p in pts) or len(set(pts)) != len(pts):
            # no usable timestamps (rare raw streams): count frames in decode order from the start instead
            self.pts, self._rank, self._keys, self.timed = list(range(len(pts))), None, [0], False
            return
        self.timed = True
        self.pts = sorted(pts)
        self._rank = {p: i for i, p in enumerate(self.pts)}
        self._keys = sorted(self._rank[k] for k in keys) or [0]

    def keyframe_before(self, index: int) -> int:
        import bisect

        return self._keys[max(0, bisect.bisect_right(self._keys, index) - 1)]

    def pts_of(self, index: int) -> int:
        return self.pts[index] if self.timed else 0

    def index_of(self, pts, path: str) -> int:
        if pts not in self._rank:
            raise DataError(f"{path}: decoded a frame with a timestamp ({pts}) the container does not list")
        return self._rank[pts]


class ImageVideo:
    """A still image as a 1-frame video."""

    name = "image"

    def __init__(self, path: str, num_threads: int):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                self._frame = np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise DataError(f"{path}: cannot read the image: {_first_line(err)}") from err
        height, width = self._frame.shape[:2]
        self.path = path
        self.info = VideoInfo(path, 1, IMAGE_FPS, height, width, self.name)

    def read(self, indices: Sequence[int], timestamps: bool = True) -> tuple[np.ndarray, list[float] | None]:
        bad = [i for i in indices if i != 0]
        if bad:
            raise IndexError(f"{self.path}: an image has only frame 0, asked for {bad[:5]}")
        return np.stack([self._frame] * len(indices)), [0.0] * len(indices) if timestamps else None

    def close(self) -> None:
        self._frame = None


_OPENERS: dict[str, Callable[[str, int], _OpenVideo]] = {
    "decord": DecordVideo, "pyav": PyAVVideo, "image": ImageVideo}


# ---------------------------------------------------------------------------------------------- media kinds
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def media_kind(local_path: str) -> Literal["image", "gif", "video"]:
    """Sniff the first bytes (names lie), then the suffix."""
    fd = os.open(local_path, os.O_RDONLY)  # unbuffered: a Python file object costs more than the read (per sample)
    try:
        head = os.read(fd, 16)
    finally:
        os.close(fd)
    if head.startswith(b"GIF8"):
        return "gif"
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    if local_path.lower().endswith(_IMAGE_SUFFIXES):
        return "image"
    return "video"


def local_path(path: str) -> str:
    """Resolve ``path`` (a local path or an iopath URI) to a local file, or raise DataError."""
    path = str(path)
    if "://" not in path:  # a plain local path: one stat call instead of iopath's four (per-sample cost)
        try:
            mode, size = (info := os.stat(path)).st_mode, info.st_size
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except OSError as err:
            raise DataError(f"{path}: cannot read it: {err}") from err
        if stat.S_ISDIR(mode):
            raise DataError(f"{path}: is a directory, not a media file")
        if size == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        return path
    from iopath.common.file_io import g_pathmgr

    try:
        if not g_pathmgr.exists(path):
            raise DataError(f"{path}: file not found")
        resolved = g_pathmgr.get_local_path(path)
    except (OSError, ValueError) as err:  # unknown URI scheme, unreachable remote store
        raise DataError(f"{path}: cannot fetch it through iopath: {err}") from err
    if g_pathmgr.isdir(path):
        raise DataError(f"{path}: is a directory, not a media file")
    if os.path.getsize(resolved) == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    return resolved


# ---------------------------------------------------------------------------------------------- bounds
def frame_range(num_frames: int, fps: float, start: float | None = None,
                end: float | None = None) -> tuple[int, int]:
    """Inclusive frame range for [start, end] seconds: round(start*fps) .. min(round(end*fps), last frame).

    This is the MVBench notebook's ``get_index`` rule; without bounds the range is the whole video.
    """
    if start is not None and start < 0 or end is not None and end < 0:
        raise ValueError(f"bounds must be >= 0 seconds, got start={start}, end={end}")
    if start is not None and end is not None and end < start:
        raise ValueError(f"end ({end}s) is before start ({start}s)")
    first = 0 if start is None else max(0, round(start * fps))
    last = num_frames - 1 if end is None else min(round(end * fps), num_frames - 1)
    if first > last:
        raise ValueError(f"bounds [{start}, {end}]s select no frame of a {num_frames}-frame video at {fps:g} fps "
                         f"({num_frames / fps:.3f}s)")
    return first, last


# ---------------------------------------------------------------------------------------------- the reader
FrameSampler = Callable[..., list[int]]  # (num_frames, fps, rng=None) -> indices, see vlmkit.data.samplers


class VideoReader:
    """Decode frames with a primary backend and fall back to the other when it fails.

    ``backend`` is tried first; with ``fallback`` the other one is tried when it raises a DataError, and the
    Clip records which backend decoded it and why the primary did not.  ``num_threads`` limits the decoder's
    threads per file (keep 1 inside DataLoader workers; 0 lets FFmpeg choose).  ``timestamps=False`` skips
    the frames' timestamps (``Clip.timestamps`` is None), which datasets do not use.
    """

    def __init__(self, backend: Backend = "decord", fallback: bool = True, num_threads: int = 1,
                 layout: Layout = "TCHW", timestamps: bool = True):
        if backend not in BACKENDS:
            raise ValueError(f"unknown decoding backend '{backend}'; accepted: {', '.join(BACKENDS)}")
        if layout not in ("THWC", "TCHW"):
            raise ValueError(f"unknown layout '{layout}'; accepted: THWC, TCHW")
        if num_threads < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = decoder's choice), got {num_threads}")
        self.backend, self.fallback, self.num_threads, self.layout = backend, fallback, num_threads, layout
        self.timestamps = timestamps

    def backends_for(self, kind: str) -> list[str]:
        if kind == "image":
            return ["image"]
        if kind == "gif":
            return ["pyav"]
        other = [b for b in BACKENDS if b != self.backend]
        return [self.backend, *other] if self.fallback else [self.backend]

    def info(self, path: str) -> VideoInfo:
        """Header facts of ``path`` (frame count as the container reports it)."""
        return self._run(path, lambda video: video.info)[0]

    def read(self, path: str, indices: Sequence[int]) -> Clip:
        """Frames at ``indices`` (any order, repeats allowed); an index past the real end raises DataError."""
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError(f"{path}: no frame indices requested")

        def action(video: _OpenVideo) -> Clip:
            try:
                return self._clip(video, indices)
            except IndexError as err:
                raise _NotRetried(DataError(str(err))) from err
        return self._finish(*self._run(path, action))

    def sample(self, path: str, sampler: FrameSampler, rng: np.random.Generator | int | None = None,
               start: float | None = None, end: float | None = None) -> Clip:
        """Frames chosen by ``sampler`` within [start, end] seconds (whole video when not given).

        When the header over-reports the frame count, the sampler runs again on the verified count.
        """
        def action(video: _OpenVideo) -> Clip:
            info = video.info
            for _ in range(2):
                if info.num_frames < 1:
                    raise DataError(f"{path}: the video has no frames")
                try:
                    first, last = frame_range(info.num_frames, info.fps, start, end)
                except ValueError as err:
                    raise _NotRetried(DataError(f"{path}: {err}")) from err
                indices = [first + int(i) for i in sampler(last - first + 1, info.fps, rng=rng)]
                try:
                    return self._clip(video, indices, info)
                except FrameCountMismatch as err:
                    info = replace(info, num_frames=err.decodable)
            raise DataError(f"{path}: the frame count kept changing while decoding")
        return self._finish(*self._run(path, action))

    # ------------------------------------------------------------------ internals
    def _clip(self, video: _OpenVideo, indices: list[int], info: VideoInfo | None = None) -> Clip:
        frames, stamps = video.read(indices, self.timestamps)
        info = replace(info or video.info, height=frames.shape[1], width=frames.shape[2])
        tensor = torch.from_numpy(np.ascontiguousarray(frames))
        if self.layout == "TCHW":
            tensor = tensor.permute(0, 3, 1, 2)
        return Clip(tensor, indices, stamps, info, self.layout, video.name)

    def _run(self, path: str, action: Callable[[_OpenVideo], object]):
        resolved = local_path(path)
        reasons: list[str] = []
        for name in self.backends_for(media_kind(resolved)):
            try:
                video = _OPENERS[name](resolved, self.num_threads)
            except DataError as err:
                reasons.append(f"{name}: {err}")
                continue
            try:
                result = action(video)
            except _NotRetried as err:  # a request error, the same with any backend
                raise err.error from err.__cause__
            except DataError as err:  # FrameCountMismatch included: let the other backend try
                reasons.append(f"{name}: {err}")
                continue
            finally:
                video.close()
            return result, reasons
        raise DataError(f"{path}: could not be decoded ({'; '.join(reasons)})")

    @staticmethod
    def _finish(clip: Clip, reasons: list[str]) -> Clip:
        clip.fallback_reason = "; ".join(reasons) or None
        if clip.frames.numel() == 0:
            raise DataError(f"{clip.info.path}: decoding produced no frames")
        return clip


class _NotRetried(Exception):
    """Wraps an error that another backend would raise too (bad request, not a bad decoder)."""

    def __init__(self, error: DataError):
        super().__init__(str(error))
        self.error = error


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    # decord prefixes messages with "[hh:mm:ss] /src/file.cc:123: "; keep the last line without it
    line = lines[-1] if lines else type(err).__name__
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", line)[:300]
