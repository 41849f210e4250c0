"""``backend: auto``: pick decord or PyAV for a dataset from a cost model of its files.

Both backends seek to the keyframe before a wanted frame and decode forward with the same FFmpeg decoder, so they
return the same pixels; what differs is their fixed costs.  decord pays per frame of the file when it opens it
(it indexes every packet), about 0.5 ms per seek and twice PyAV's cost per megapixel returned; vlmkit's PyAV path
pays about 0.5 ms per read (opening the container and the codec, Python).  Since the PyAV path converts frames
with one single-threaded swscale context per thread (it used to build one per frame), it is the cheaper one on
every clip measured (0.15-0.80x decord's CPU, docs/performance.md); the fit predicts decord cheaper only for
files of one or two tiny frames.  ``auto`` stays the default so that a refit on other codecs or machines changes
the choice without a config change.

The model: predicted CPU milliseconds per read = ``coefficients[backend] . features``, with features taken from the
container (PyAV header and packet list, no decoding) and from the frame indices the dataset's sampler picks:
``[1, frames in the file, seeks, frames decoded, frames decoded x megapixels, frames returned x megapixels]``.
``decode_plan`` counts seeks and decoded frames as ``PyAVVideo`` reads them.  The coefficients are fitted
(non-negative least squares) on measured decode times by ``python benchmarks/decode_bench.py --calibrate``;
docs/performance.md has the measurements and how well the choice matches the faster backend.

A dataset probes its first ``PROBE_FILES`` readable media files once, in the main process (DataLoader workers
inherit the choice), and logs it; the sum of the predictions decides.  A dataset whose files cannot be probed
(none readable yet, or a stream) uses ``DEFAULT_BACKEND`` until its first decoded file decides.
"""
from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vlmkit.errors import DataError

_log = logging.getLogger(__name__)

BACKEND_CHOICES: tuple[str, ...] = ("auto", "decord", "pyav")
PROBE_FILES = 3
DEFAULT_BACKEND = "pyav"  # the cheaper one on all 24 measured clips (docs/performance.md)
FEATURES = ("fixed", "file_frames", "seeks", "decoded", "decoded_mpx", "returned_mpx")

# CPU ms per unit of each feature, fitted by `python benchmarks/decode_bench.py --calibrate --rounds 5` (24 clips,
# 1 thread, 2-CPU machine at load average 3.5-4; PyAV is the cheaper on all 24 and the fit picks it on all 24:
# docs/performance.md).
COEFFICIENTS: dict[str, tuple[float, ...]] = {
    "decord": (0.0, 0.0339, 0.5158, 0.023, 1.1778, 4.0833),
    "pyav": (0.5357, 0.0025, 0.0896, 0.0169, 1.3389, 1.9067),
}


def installed() -> list[str]:
    """The backends whose library imports here (PyAV is a core dependency; decord may be missing)."""
    import importlib.util

    return [name for name, module in (("decord", "decord"), ("pyav", "av")) if importlib.util.find_spec(module)]


def check_backend(backend: str, where: str = "backend") -> str:
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"{where}: unknown decoding backend {backend!r}; accepted: {', '.join(BACKEND_CHOICES)}")
    return backend


def decode_plan(keyframes: Sequence[int], targets: Iterable[int]) -> tuple[int, int]:
    """(seeks, frames decoded) to read ``targets`` forward from their keyframes, as ``PyAVVideo._decode`` does:
    jump when a keyframe lies ahead of the current position, otherwise keep decoding."""
    keys = sorted(keyframes) or [0]
    seeks = decoded = 0
    position: int | None = None
    for target in sorted(set(int(t) for t in targets)):
        key = keys[max(0, bisect.bisect_right(keys, target) - 1)]
        if position is None or key > position + 1:
            seeks, position = seeks + 1, key - 1
        if target > position:
            decoded, position = decoded + target - position, target
    return seeks, decoded


@dataclass(frozen=True)
class FileFeatures:
    """What the cost model reads about one file and the frames wanted from it."""

    path: str
    file_frames: int
    height: int
    width: int
    keyframes: tuple[int, ...]
    indices: tuple[int, ...]

    def vector(self) -> np.ndarray:
        seeks, decoded = decode_plan(self.keyframes, self.indices)
        mpx = self.height * self.width / 1e6
        return np.array([1.0, self.file_frames, seeks, decoded, decoded * mpx, len(self.indices) * mpx])


def predict_ms(features: FileFeatures, coefficients: dict[str, tuple[float, ...]] | None = None) -> dict[str, float]:
    """Predicted CPU milliseconds of one read, per backend."""
    coefficients = coefficients or COEFFICIENTS
    vector = features.vector()
    return {name: float(np.dot(vector, coef)) for name, coef in coefficients.items()}


def probe(path: str, sampler: Callable[..., list[int]]) -> FileFeatures:
    """Header, packet list and the sampler's indices of ``path`` (PyAV demuxes, nothing is decoded)."""
    from vlmkit.data.video import PyAVVideo, local_path, media_kind

    resolved = local_path(path)
    if media_kind(resolved) != "video":
        raise DataError(f"{path}: not a video (images and GIFs have a fixed backend)")
    video = PyAVVideo(resolved, 1)
    try:
        table = video._packets()
        frames = len(table.pts)
        if frames < 1:
            raise DataError(f"{path}: no frames listed")
        indices = sampler(frames, video.info.fps, rng=0)
        keyframes = tuple(table.keyframe_before(i) for i in sorted(set(indices)))
        return FileFeatures(path, frames, video.info.height or 0, video.info.width or 0, keyframes, tuple(indices))
    finally:
        video.close()


@dataclass
class BackendChoice:
    """The backend a dataset reads with, and why (logged once, kept on ``MediaLoader.choice``)."""

    backend: str
    reason: str
    predicted_ms: dict[str, float] = field(default_factory=dict)
    probed: list[str] = field(default_factory=list)


def choose(paths: Iterable[str], sampler: Callable[..., list[int]], dataset: str = "dataset",
           limit: int = PROBE_FILES) -> BackendChoice:
    """The backend with the lower predicted cost summed over the first ``limit`` probe-able files of ``paths``
    (among the installed ones: with only one, that one without probing)."""
    available = installed()
    if len(available) < 2:  # nothing to choose (and the probe needs PyAV)
        return BackendChoice(available[0] if available else "pyav", "the only decoding library installed")
    totals = dict.fromkeys(COEFFICIENTS, 0.0)
    probed, skipped = [], 0
    for path in paths:
        if len(probed) >= limit or skipped >= 4 * limit:
            break
        try:
            features = probe(path, sampler)
        except (DataError, OSError, ValueError):  # a missing or broken file is the bad-sample policy's business
            skipped += 1
            continue
        for name, cost in predict_ms(features).items():
            totals[name] += cost
        probed.append(path)
    if not probed:
        return BackendChoice(DEFAULT_BACKEND, f"no readable video to probe; {DEFAULT_BACKEND} (the cheaper on most "
                                              f"measured clips) until the first decoded file decides")
    backend = min(totals, key=lambda name: (totals[name], name))
    per_file = {name: round(total / len(probed), 2) for name, total in totals.items()}
    reason = (f"predicted CPU per sample over {len(probed)} probed file(s): "
              + ", ".join(f"{name} {cost:.1f} ms" for name, cost in per_file.items()))
    choice = BackendChoice(backend, reason, per_file, probed)
    _log.info("%s: backend auto -> %s (%s)", dataset, backend, reason)
    return choice
