"""Decoding speed: decord vs PyAV (vlmkit's backends) vs a naive decode-everything baseline.

Writes its own videos (PyAV, libx264 yuv420p), then reads the same frame indices three ways in one process,
interleaved over rounds by ``benchmarks/harness.py`` (medians of wall and CPU time, one thread), after checking
that all three give the same pixels, and prints speed-ups against the naive baseline (PyAV decoding and
converting every frame to RGB, then indexing: what torchvision.io.read_video-style loaders do).

``--calibrate`` fits the cost model of ``backend: auto`` (vlmkit/data/backend_choice.py): it writes a grid of clips
(length, resolution, keyframe interval, frames wanted), measures decord and PyAV on each (same pixels asserted,
interleaved rounds), fits each backend's coefficients by non-negative least squares on relative error, and prints
them with each clip's measured and predicted costs and how often the model picks the faster backend.

Usage: python benchmarks/decode_bench.py [--rounds 5] [--calibrate]
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

from vlmkit.data import backend_choice  # noqa: E402
from vlmkit.demo.synthetic_video import test_pattern, write_video  # noqa: E402
from vlmkit.data.video import VideoReader  # noqa: E402
from vlmkit.registry import SAMPLERS  # noqa: E402

SCENARIOS = [  # name, frames, fps, height, width, keyframe interval, sampler config
    ("tiny 32 px, 8 of 16", 16, 10, 32, 32, 8, {"name": "linspace", "num_frames": 8}),
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


# frames in the clip, height, width, keyframe interval, frames wanted (linspace)
CALIBRATION_GRID = [
    (8, 32, 32, 12, 8), (16, 32, 32, 12, 8), (32, 32, 32, 250, 8), (150, 32, 32, 30, 8), (600, 32, 32, 30, 8),
    (16, 64, 96, 8, 8), (40, 64, 96, 8, 8), (150, 64, 64, 30, 8), (150, 64, 64, 250, 8), (300, 64, 96, 60, 16),
    (16, 120, 160, 12, 16), (64, 120, 160, 12, 8), (150, 120, 160, 30, 8), (600, 120, 160, 60, 16),
    (8, 240, 320, 12, 8), (32, 240, 320, 250, 8), (64, 240, 320, 12, 8), (150, 240, 320, 25, 8),
    (150, 240, 320, 150, 16), (300, 240, 320, 30, 16), (900, 180, 240, 60, 16), (16, 360, 640, 12, 8),
    (150, 360, 640, 30, 8), (300, 360, 640, 30, 16),
]


def nonnegative_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with coefficients >= 0: drop the most negative feature and refit until none is negative."""
    active = list(range(x.shape[1]))
    while True:
        coef = np.zeros(x.shape[1])
        coef[active] = np.linalg.lstsq(x[:, active], y, rcond=None)[0]
        if coef.min() >= 0:
            return coef
        active.remove(int(coef.argmin()))


def calibrate(rounds: int) -> None:
    """Measure both backends over CALIBRATION_GRID and fit backend_choice's coefficients (relative error)."""
    readers = {name: VideoReader(name, fallback=False, num_threads=1) for name in ("decord", "pyav")}
    rows, measured = [], {"decord": [], "pyav": []}
    with tempfile.TemporaryDirectory() as tmp:
        for frames, height, width, gop, wanted in CALIBRATION_GRID:
            path = str(write_video(Path(tmp) / f"{frames}_{height}_{width}_{gop}.mp4",
                                   test_pattern(frames, height, width), fps=25, gop=gop))
            sampler = SAMPLERS.build({"name": "linspace", "num_frames": wanted})
            features = backend_choice.probe(path, sampler)
            indices = list(features.indices)
            repeats = max(1, int(30 / (1 + frames * height * width / 2e6)))  # >= ~20 ms per timed run

            def side(name, indices=indices, path=path, repeats=repeats):
                return lambda: [readers[name].read(path, indices).frames for _ in range(repeats)][0]
            result = compare({"decord": side("decord"), "pyav": side("pyav")}, rounds, same=torch.equal)
            rows.append(features)
            for name in measured:
                measured[name].append(result[name]["cpu_s"] * 1e3 / repeats)
            print(f"{frames:4d} frames {height}x{width} gop {gop:3d} {wanted:2d} wanted: decord "
                  f"{measured['decord'][-1]:7.2f} ms, pyav {measured['pyav'][-1]:7.2f} ms", flush=True)
    x = np.stack([f.vector() for f in rows])
    coefficients = {}
    for name, costs in measured.items():
        y = np.array(costs)
        coefficients[name] = tuple(round(float(c), 4) for c in nonnegative_fit(x / y[:, None], np.ones_like(y)))
    predicted = [backend_choice.predict_ms(f, coefficients) for f in rows]
    right = sum(min(p, key=p.get) == min(("decord", "pyav"), key=lambda n: measured[n][i])
                for i, p in enumerate(predicted))
    chosen = sum(measured[min(p, key=p.get)][i] for i, p in enumerate(predicted))
    best = sum(min(measured["decord"][i], measured["pyav"][i]) for i in range(len(rows)))
    for i, (f, p) in enumerate(zip(rows, predicted)):
        print(f"{f.file_frames:4d}x{f.height}x{f.width} measured d/p {measured['decord'][i]:6.2f}/"
              f"{measured['pyav'][i]:6.2f}  predicted {p['decord']:6.2f}/{p['pyav']:6.2f}")
    summary = {"features": backend_choice.FEATURES, "coefficients": coefficients, "clips": len(rows),
               "faster_backend_picked": right, "cost_of_choices_over_best": round(chosen / best, 3),
               "always_decord_over_best": round(sum(measured["decord"]) / best, 3),
               "always_pyav_over_best": round(sum(measured["pyav"]) / best, 3)}
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calibrate", action="store_true", help="fit backend: auto's cost model")
    args = parser.parse_args()
    pin_threads(1)
    if args.calibrate:
        calibrate(args.rounds)
        return
    readers = {name: VideoReader(name, fallback=False, num_threads=1) for name in ("decord", "pyav")}
    print(f"{'scenario':28s} {'naive ms':>9s} {'pyav ms':>8s} {'decord ms':>9s} {'pyav/naive':>10s} "
          f"{'decord/naive':>12s} {'decord/pyav':>11s} {'(CPU)':>6s} {'auto':>6s}"
          "  (ratios = speed-ups, wall; CPU; auto's pick)")
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
            predicted = backend_choice.predict_ms(backend_choice.probe(path, SAMPLERS.build(sampler_cfg)))
            result["auto_picks"] = min(("decord", "pyav"), key=predicted.get)
            result["faster"] = min(("decord", "pyav"), key=lambda n: result[n]["cpu_s"])
            report[name] = result
            t_naive, t_pyav, t_decord = (result[k]["wall_s"] for k in ("naive", "pyav", "decord"))
            cpu_pyav_decord = result["pyav"]["cpu_s"] / max(result["decord"]["cpu_s"], 1e-9)
            print(f"{name:28s} {t_naive * 1e3:9.1f} {t_pyav * 1e3:8.1f} {t_decord * 1e3:9.1f} "
                  f"{t_naive / t_pyav:10.2f} {t_naive / t_decord:12.2f} {t_pyav / t_decord:11.2f} "
                  f"{cpu_pyav_decord:6.2f} {result['auto_picks']:>6s}"
                  f"{'' if result['auto_picks'] == result['faster'] else ' (the slower one)'}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
