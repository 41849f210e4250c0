"""Decoding speed: decord vs PyAV (vlmkit's backends) vs a naive decode-everything baseline.

Writes its own videos (PyAV, libx264 yuv420p), then times reading the same frame indices three ways in one
process and prints clips per second and ratios against the naive baseline (PyAV decoding and converting every
frame to RGB, then indexing: what torchvision.io.read_video-style loaders do).  Runs in well under a minute on
2 cores.  Usage: python benchmarks/decode_bench.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from vlmkit.data.synthetic_video import test_pattern, write_video
from vlmkit.data.video import VideoReader
from vlmkit.registry import SAMPLERS

SCENARIOS = [  # name, frames, fps, height, width, keyframe interval, sampler config
    ("short 5s, 16 of 150", 150, 30, 180, 240, 30, {"name": "linspace", "num_frames": 16}),
    ("long 30s, 16 of 900", 900, 30, 180, 240, 60, {"name": "linspace", "num_frames": 16}),
    ("long 30s, 1 fps (16 max)", 900, 30, 180, 240, 60, {"name": "fps", "max_frames": 16}),
    ("short 5s, 8 middles of 150", 150, 30, 180, 240, 30, {"name": "segment_middle", "num_frames": 8}),
]


def naive_read(path: str, indices: list[int]) -> torch.Tensor:
    """Decode and convert every frame, then index."""
    with av.open(path) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return torch.from_numpy(frames[indices]).permute(0, 3, 1, 2)


def timed(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up (file cache, lazy imports)
    started = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    return (time.perf_counter() - started) / repeats, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    readers = {name: VideoReader(name, fallback=False, num_threads=1) for name in ("decord", "pyav")}
    print(f"{'scenario':28s} {'naive ms':>9s} {'pyav ms':>8s} {'decord ms':>9s} "
          f"{'pyav/naive':>10s} {'decord/naive':>12s} {'decord/pyav':>11s}  (ratios = speed-ups)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, num_frames, fps, height, width, gop, sampler_cfg in SCENARIOS:
            path = str(write_video(Path(tmp) / f"{num_frames}_{gop}.mp4", test_pattern(num_frames, height, width),
                                   fps=fps, gop=gop))
            indices = SAMPLERS.build(sampler_cfg)(num_frames, float(fps))
            t_naive, base = timed(lambda: naive_read(path, indices), args.repeats)
            t_pyav, by_pyav = timed(lambda: readers["pyav"].read(path, indices).frames, args.repeats)
            t_decord, by_decord = timed(lambda: readers["decord"].read(path, indices).frames, args.repeats)
            assert torch.equal(base, by_pyav) and torch.equal(base, by_decord), f"{name}: pixels differ"
            print(f"{name:28s} {t_naive * 1e3:9.1f} {t_pyav * 1e3:8.1f} {t_decord * 1e3:9.1f} "
                  f"{t_naive / t_pyav:10.2f} {t_naive / t_decord:12.2f} {t_pyav / t_decord:11.2f}")


if __name__ == "__main__":
    main()
