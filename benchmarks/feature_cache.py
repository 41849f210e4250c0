"""Training step time with the frozen-feature cache against decoding and encoding every step, in one process.

  python benchmarks/feature_cache.py [--preset tiny/pooling] [--clips 32] [--batch-size 4] [--steps 2 8]
                                     [--rounds 7] [--workers 0] [--threads 1] [MODEL_OVERRIDE ...]

A frozen-ViT recipe: the preset with ``model.branches.0.encoder.freeze=true`` and ``model.sampling.train_augment=false``
(the cache's conditions), trained by the Trainer on an ``llava_instruct`` dataset of ``--clips`` synthetic videos of
150 frames at 320x240, 25 fps (``data_pipeline.py``'s real-size clips; the datasets' default ``backend: auto``).
Both sides are the same training run through ``train.py``'s path (``assemble`` -> ``Trainer.train``), with data
loading included (DataLoader with ``--workers``; 0 decodes in the training process):

- ``decode``: frames decoded, processed and encoded by the frozen ViT every step (no cache);
- ``cached``: ``run.feature_cache`` pointing at a cache ``vlmkit cache-features`` built once beforehand (its build
  time is reported, not counted per step).

Like for like: the warm-up runs of both sides must give the same losses (within 1e-6), or the benchmark stops.
Timing: ``benchmarks/harness.py`` interleaves runs of N1 and N2 steps of each side over ``--rounds`` rounds; fixed
costs (building the model and runner, opening the cache) cancel in per-step time = (T(N2) - T(N1)) / (N2 - N1)
within a round, in wall and CPU time (CPU includes finished DataLoader workers); medians over rounds.
Prints a JSON line with both per-step times and ``speedup = decode / cached`` (target: at least 3).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FROZEN = ["model.branches.0.encoder.freeze=true", "model.sampling.train_augment=false"]
HEIGHT, WIDTH, LENGTH, FPS, GOP = 240, 320, 150, 25, 25
TARGET = 3.0
CONFIG = """
model: {preset: PRESET}
datasets:
  train: {preset: llava_instruct, ann_path: WORK/train.json, media_root: WORK/videos, on_bad_sample: raise}
run: {name: trainer, max_steps: 2, batch_size: BATCH, seed: 0, num_workers: NUMW, loggers: [],
      output_dir: WORK/unused, scheduler: {name: constant, init_lr: 0.001}}
"""


def write_data(work: Path, clips: int) -> None:
    from vlmkit.demo import synthetic_video as sv

    (work / "videos").mkdir(parents=True)
    words = ["red", "green", "blue", "left", "right", "up", "down", "still"]
    for i in range(clips):
        sv.write_video(work / "videos" / f"clip{i:03d}.mp4", sv.test_pattern(LENGTH, HEIGHT, WIDTH, seed=i),
                       fps=FPS, gop=GOP)
    train = [{"id": str(i), "video": f"clip{i:03d}.mp4", "conversations": [
        {"from": "human", "value": "<video>\nwhat moves in the video?"},
        {"from": "gpt", "value": f"the {words[i % len(words)]} shape"}]} for i in range(clips)]
    (work / "train.json").write_text(json.dumps(train))


def train(config: Path, overrides: list[str], steps: int, out: Path) -> list[float]:
    from vlmkit.assemble import assemble
    from vlmkit.config import load_config

    cfg = load_config(config, [*overrides, f"run.max_steps={steps}", f"run.output_dir={out}"], purpose="train")
    runner = assemble(cfg, section="run").runner
    runner.train()
    return list(runner.losses)


def same_losses(a: list[float], b: list[float]) -> bool:
    n = min(len(a), len(b))
    return n > 0 and all(abs(x - y) <= 1e-6 for x, y in zip(a[:n], b[:n]))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny/pooling")
    parser.add_argument("--clips", type=int, default=32, help="videos (32 at batch 4: N2=8 steps stay in one epoch)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, nargs=2, default=(2, 8), metavar=("N1", "N2"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of both sides")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: stable on a shared machine)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="more model overrides, for both sides")
    args = parser.parse_args(argv)

    import torch

    from harness import compare, pin_threads
    from vlmkit.feature_cache_cmd import main as cache_features

    pin_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="vlmkit-feature-cache-"))
    write_data(work, args.clips)
    config = work / "train.yaml"
    config.write_text(textwrap.dedent(CONFIG).replace("NUMW", str(args.workers)).replace("PRESET", args.preset)
                      .replace("WORK", str(work)).replace("BATCH", str(args.batch_size)))
    overrides = [*FROZEN, *args.overrides]
    cache = work / "cache"
    start = time.perf_counter()
    assert cache_features([str(config), *overrides, "--output", str(cache), "--num-workers", str(args.workers)]) == 0
    build_s = time.perf_counter() - start
    outs = (work / f"run{i}" for i in range(10 ** 6))
    n1, n2 = args.steps
    with_cache = [*overrides, f"run.feature_cache={cache}"]
    sides = {}
    for n in (n1, n2):
        sides[f"decode_{n}"] = lambda n=n: train(config, overrides, n, next(outs))
        sides[f"cached_{n}"] = lambda n=n: train(config, with_cache, n, next(outs))
    timed = compare(sides, args.rounds, same=same_losses)  # the warm-up losses of every side match decode_N1's

    def per_step(side: str, kind: str) -> list[float]:
        return [(b - a) / (n2 - n1) for a, b in zip(timed[f"{side}_{n1}"][kind], timed[f"{side}_{n2}"][kind])]

    result = {"preset": args.preset, "overrides": overrides, "clips": args.clips, "clip": f"{LENGTH} frames "
              f"{WIDTH}x{HEIGHT} {FPS} fps", "batch_size": args.batch_size, "steps": [n1, n2], "rounds": args.rounds,
              "workers": args.workers, "threads": torch.get_num_threads(), "loadavg": timed["loadavg"],
              "same_losses": True, "cache_build_s": round(build_s, 2),
              "cache_mib": round(sum(p.stat().st_size for p in cache.glob("*.safetensors")) / 2 ** 20, 3)}
    for kind, label in (("wall_runs", "wall"), ("cpu_runs", "cpu")):
        decode_s, cached_s = statistics.median(per_step("decode", kind)), statistics.median(per_step("cached", kind))
        result.update({f"decode_step_ms_{label}": round(decode_s * 1e3, 2),
                       f"cached_step_ms_{label}": round(cached_s * 1e3, 2),
                       f"speedup_{label}": round(decode_s / cached_s, 2),
                       f"speedups_per_round_{label}": [round(a / b, 2) for a, b in
                                                       zip(per_step("decode", kind), per_step("cached", kind))]})
    result["meets_target"] = result["speedup_cpu"] >= TARGET
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
