"""Decoding speed: decord vs PyAV (vlmkit's backends) vs a naive decode-everything baseline.

Writes its own videos (PyAV, libx264 yuv420p), then reads the same frame indices three ways in one process,
interleaved over rounds by ``benchmarks/harness.py`` (medians of wall and CPU time, one thread), after checking
that all three give the same pixels, and prints speed-ups against the naive baseline (PyAV decoding and
converting every frame to RGB, then indexing: what torchvision.io.read_video-style loaders do).
Usage: python benchmarks/decode_bench.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare, pin_threads  # noqa: E402

from vlmkit.demo.synthetic_video import test_pattern, write_video
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pin_threads(1)
    readers = {name: VideoReader(name, fallback=False, num_threads=1) for name in ("decord", "pyav")}
    print(f"{'scenario':28s} {'naive ms':>9s} {'pyav ms':>8s} {'decord ms':>9s} {'pyav/naive':>10s} "
          f"{'decord/naive':>12s} {'decord/pyav':>11s} {'(CPU)':>6s}  (ratios = speed-ups, wall; CPU last)")
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, num_frames, fps, height, width, gop, sampler_cfg in SCENARIOS:
            path = str(write_video(Path(tmp) / f"{num_frames}_{gop}.mp4", test_pattern(num_frames, height, width),
                                   fps=fps, gop=gop))
            indices = SAMPLERS.build(sampler_cfg)(num_frames, float(fps))
            result = compare({"naive": lambda: naive_read(path, indices),
                              "pyav": lambda: readers["pyav"].read(path, indices).frames,
                              "decord": lambda: readers["decord"].read(path, indices).frames},
                             args.rounds, same=torch.equal)
            report[name] = result
            t_naive, t_pyav, t_decord = (result[k]["wall_s"] for k in ("naive", "pyav", "decord"))
            cpu_pyav_decord = result["pyav"]["cpu_s"] / max(result["decord"]["cpu_s"], 1e-9)
            print(f"{name:28s} {t_naive * 1e3:9.1f} {t_pyav * 1e3:8.1f} {t_decord * 1e3:9.1f} "
                  f"{t_naive / t_pyav:10.2f} {t_naive / t_decord:12.2f} {t_pyav / t_decord:11.2f} "
                  f"{cpu_pyav_decord:6.2f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
