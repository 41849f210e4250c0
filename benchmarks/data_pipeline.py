"""The full dataset pipeline against a plain decode + the same transforms, interleaved in one process.

Full pipeline: ``llava_instruct`` dataset (annotation record -> tokenize with the model's template -> decode
with vlmkit's VideoReader -> sample -> process per branch) + ``collater``, through a DataLoader.
Baseline: the decoding library called directly (decord ``get_batch``, or PyAV decoding up to the last wanted
frame) for the same frame indices, then torchvision's resize / center crop functions and ``torch.stack``,
through a DataLoader with the same workers; vlmkit's reader and processors are not used.  The pipeline hands
uint8 frames to the model (which scales and normalises them on its device); a third side, ``pipeline_float``,
is the former pipeline that normalises to float32 in the workers.  Every side must give the same pixels
(``pipeline_float`` those of ``normalise_frames(baseline)``), checked before timing.  Timing:
``benchmarks/harness.py`` (interleaved rounds, medians, CPU time including the workers').  Target: pipeline
throughput >= 0.85 x baseline.

    python benchmarks/data_pipeline.py [--clips 24] [--workers 0 2] [--rounds 5] [--backend decord]
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare, pin_threads  # noqa: E402

from vlmkit.contracts import UINT8_PIXELS, DataContract, ImagePreprocessing, normalise_frames  # noqa: E402
from vlmkit.demo import synthetic_video as sv  # noqa: E402
from vlmkit.video_sampling import VideoSampling  # noqa: E402
from vlmkit.registry import DATASETS  # noqa: E402

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


def plain_decode(path: str, indices: list[int], backend: str) -> np.ndarray:
    """(T, H, W, 3) uint8 straight from the library."""
    if backend == "decord":
        import decord

        return decord.VideoReader(path, num_threads=1).get_batch(indices).asnumpy()
    import av

    wanted, frames = set(indices), {}
    with av.open(path) as container:
        container.streams.video[0].thread_count = 1
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                frames[i] = frame.to_ndarray(format="rgb24")
            if i >= max(indices):
                break
    return np.stack([frames[i] for i in indices])


class RawClips(Dataset):
    """The same indices the pipeline samples, decoded by the library, transformed by torchvision functions."""

    def __init__(self, paths: list[str], contract: DataContract, backend: str):
        self.paths, self.backend = paths, backend
        self.prep = contract.preprocessing[0]
        self.indices = [contract.sampling.sampler(False)(LENGTH, FPS) for _ in paths]

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        prep = self.prep
        frames = torch.from_numpy(plain_decode(self.paths[i], self.indices[i], self.backend)).permute(0, 3, 1, 2)
        frames = F.resize(frames, prep.size, interpolation=InterpolationMode[prep.interpolation.upper()],
                          antialias=True)
        return F.center_crop(frames, prep.size) if prep.crop else F.resize(frames, [prep.size, prep.size])


def pixels(loader: DataLoader) -> torch.Tensor:
    """Every clip of one pass, (N, T, C, H, W)."""
    return torch.cat([b["pixel_values"][0] if isinstance(b, dict) else b for b in loader])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--backend", choices=["decord", "pyav"], default="decord")
    args = parser.parse_args()
    pin_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="vlmkit-bench-"))
    names = make_videos(folder, args.clips)
    ann = folder / "ann.json"
    ann.write_text(json.dumps([{"id": n, "video": n, "conversations": [
        {"from": "human", "value": "<video>\nWhat happens in the video?"},
        {"from": "gpt", "value": "A red square moves to the right."}]} for n in names]))
    contract = make_contract()
    assert contract.extra[UINT8_PIXELS], "the model's data contract no longer asks for uint8 frames"
    former = copy.copy(contract)
    former.extra = {**contract.extra, UINT8_PIXELS: False}
    dataset, float_dataset = (DATASETS.build({"name": "llava_instruct", "ann_path": str(ann), "media_root": str(folder),
                                              "train": False, "backend": args.backend}, contract=c)
                              for c in (contract, former))
    prep = contract.preprocessing[0]

    def same(base: torch.Tensor, out: torch.Tensor) -> bool:
        expected = base if out.dtype == torch.uint8 else normalise_frames(base, prep)
        return out.dtype == expected.dtype and out.shape == expected.shape and torch.equal(out, expected)

    raw = RawClips([str(folder / n) for n in names], contract, args.backend)
    report = {"backend": args.backend, "clips": args.clips, "frames": FRAMES, "size": SIZE}
    for workers in args.workers:
        loaders = {"baseline": DataLoader(raw, batch_size=args.batch_size, num_workers=workers,
                                          collate_fn=torch.stack),
                   "pipeline": DataLoader(dataset, batch_size=args.batch_size, num_workers=workers,
                                          collate_fn=dataset.collater),
                   "pipeline_float": DataLoader(float_dataset, batch_size=args.batch_size, num_workers=workers,
                                                collate_fn=float_dataset.collater)}
        result = compare({name: (lambda loader=loader: pixels(loader)) for name, loader in loaders.items()},
                         args.rounds, same=same)
        for side in ("pipeline", "pipeline_float"):
            result[side]["throughput_vs_baseline_wall"] = round(1 / result[side]["wall_ratio"], 3)
            result[side]["throughput_vs_baseline_cpu"] = round(1 / result[side]["cpu_ratio"], 3)
        report[f"workers_{workers}"] = result
        print(f"workers={workers}: throughput vs baseline, wall / CPU: pipeline (uint8) "
              f"{result['pipeline']['throughput_vs_baseline_wall']:.3f} / "
              f"{result['pipeline']['throughput_vs_baseline_cpu']:.3f}, former float pipeline "
              f"{result['pipeline_float']['throughput_vs_baseline_wall']:.3f} / "
              f"{result['pipeline_float']['throughput_vs_baseline_cpu']:.3f} (target >= 0.85); load "
              f"{result['loadavg']}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
