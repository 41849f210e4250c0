"""Clips per second of the full dataset pipeline against raw decoding, in the same process.

Full pipeline: ``llava_instruct`` dataset (annotation record -> tokenize with the model's template -> decode
with VideoReader -> sample -> process per branch) + ``collater``, through a DataLoader.
Baseline: ``VideoReader.read`` of the same frame indices + the same processor (resize, crop, normalise) +
``torch.stack``, through a DataLoader with the same workers.  Target: pipeline >= 0.85 x baseline.

    python benchmarks/data_pipeline.py [--clips 24] [--workers 0 2] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from vlmkit.contracts import DataContract, ImagePreprocessing
from vlmkit.data import synthetic_video as sv
from vlmkit.data.samplers.video_sampling import VideoSampling
from vlmkit.data.video import VideoReader
from vlmkit.registry import DATASETS

FRAMES, SIZE, HEIGHT, WIDTH, LENGTH, FPS = 8, 224, 240, 320, 150, 25


def make_videos(folder: Path, clips: int) -> list[str]:
    names = []
    for i in range(clips):
        name = f"clip{i:03d}.mp4"
        sv.write_video(folder / name, sv.test_pattern(LENGTH, HEIGHT, WIDTH, seed=i), fps=FPS, gop=25)
        names.append(name)
    return names


def make_contract() -> DataContract:
    """The tiny model's tokenizer and template, with a realistic frame count and resolution."""
    sys_path = Path(tempfile.mkdtemp()) / "exp.yaml"
    sys_path.write_text("model: {preset: tiny/pooling}\n")
    from vlmkit.assemble import build_model
    from vlmkit.config import load_config

    contract = build_model(load_config(sys_path)).data_contract()
    contract.num_frames = FRAMES
    contract.preprocessing = (ImagePreprocessing(SIZE),)
    contract.sampling = VideoSampling({"name": "linspace", "num_frames": FRAMES})
    return contract


class RawClips(Dataset):
    """Decode the same indices the pipeline samples, apply the same processor, nothing else."""

    def __init__(self, paths: list[str], contract: DataContract):
        self.paths = paths
        self.reader = VideoReader(backend="decord", num_threads=1)
        self.sampler = contract.sampling.sampler(False)
        self.processor = contract.sampling.processor(contract.preprocessing[0], False)
        self.indices = [self.sampler(LENGTH, FPS) for _ in paths]

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.processor(self.reader.read(self.paths[i], self.indices[i]).frames)


def clips_per_second(loader: DataLoader, repeats: int) -> float:
    for _ in loader:  # warm-up: workers started, files in the page cache
        pass
    start, count = time.perf_counter(), 0
    for _ in range(repeats):
        for batch in loader:
            count += len(batch["meta"]) if isinstance(batch, dict) else len(batch)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="vlmkit-bench-"))
    names = make_videos(folder, args.clips)
    ann = folder / "ann.json"
    ann.write_text(json.dumps([{"id": n, "video": n, "conversations": [
        {"from": "human", "value": "<video>\nWhat happens in the video?"},
        {"from": "gpt", "value": "A red square moves to the right."}]} for n in names]))
    contract = make_contract()
    dataset = DATASETS.build({"name": "llava_instruct", "ann_path": str(ann), "media_root": str(folder),
                              "train": False}, contract=contract)
    raw = RawClips([str(folder / n) for n in names], contract)
    results = {}
    for workers in args.workers:
        pipe = clips_per_second(DataLoader(dataset, batch_size=args.batch_size, num_workers=workers,
                                           collate_fn=dataset.collater), args.repeats)
        base = clips_per_second(DataLoader(raw, batch_size=args.batch_size, num_workers=workers,
                                           collate_fn=torch.stack), args.repeats)
        results[workers] = (pipe, base)
        print(f"workers={workers}: pipeline {pipe:7.1f} clips/s, raw decode+resize {base:7.1f} clips/s, "
              f"ratio {pipe / base:.3f} (target >= 0.85)")
    print(json.dumps({f"workers_{w}": {"pipeline": round(p, 2), "raw": round(b, 2), "ratio": round(p / b, 3)}
                      for w, (p, b) in results.items()}))


if __name__ == "__main__":
    main()
