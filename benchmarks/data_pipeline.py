"""The full dataset pipeline against what a user would otherwise write, interleaved in one process.

Full pipeline: ``llava_instruct`` dataset (annotation record -> tokenize with the model's template -> decode
with vlmkit's VideoReader, ``backend: auto`` by default -> sample -> process per branch) + ``collater``, through a
DataLoader.  Baseline: the decoding library called directly (decord ``VideoReader(path).get_batch(indices)``, or
PyAV decoding up to the last wanted frame, as PLLaVA and VideoGPT+ load) for the same frame indices, then
torchvision's resize / center crop functions to uint8 and ``torch.stack``, through a DataLoader with the same
workers; vlmkit's reader and processors are not used, and the baseline does not tokenize.  A user's loader
(PLLaVA's, VideoGPT+'s) also tokenizes each sample's conversation: ``baseline_text`` is the same baseline plus
one transformers tokenizer call per sample on the conversation vlmkit renders, with one visual token where vlmkit
expands K (rendered once, up front: less work than a user's loader, which renders per sample and masks labels),
and the ids padded by the collate function; the ``*_vs_text`` figures are throughput against it.
``baseline_pyav`` (``baseline_decord`` under ``--baseline pyav``) is the other library's plain loop, decode-only like
``baseline``; the ``*_vs_pyav`` (``*_vs_decord``) figures are throughput against it.  Sides:

- ``pipeline``: the dataset with ``--backend`` (auto: the per-dataset choice of vlmkit.data.backend_choice);
- ``pipeline_same``: the dataset forced to the baseline's library: vlmkit's own per-sample overhead;
- ``pipeline_float`` (``--float``): the former pipeline that normalises to float32 in the workers.

Every side must give the same pixels (``pipeline_float`` those of ``normalise_frames(baseline)``), checked before
timing.  ``--train``: training mode: the datasets draw a seeded random resized crop + flip per sample, the baseline
applies torchvision's ``v2.RandomResizedCrop`` + ``RandomHorizontalFlip`` with the global RNG (as a user's loader
does, unseeded), so pixels differ: the check is then that each side gives clips of the same shape and dtype,
and that every pipeline clip is the dataset's processor applied, with the sample's seed, to plain decord's
frames at the same indices.  Timing: ``benchmarks/harness.py`` (interleaved rounds, medians, CPU time including the workers').

Scenarios (``--scenario``): ``small``: 16-frame 32x32 clips (one keyframe, as the demo's), 8 frames sampled, 32 px (the tiny models' input;
per-sample overhead dominates; target >= 0.85 of the baseline's throughput); ``real``: 150-frame 320x240 clips,
8 frames sampled, 224 px (target >= 0.95).

    python benchmarks/data_pipeline.py [--scenario small real] [--clips 24] [--workers 0 1] [--rounds 5]
                                       [--backend auto] [--baseline decord] [--float] [--train]
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare, pin_threads  # noqa: E402

from vlmkit.contracts import UINT8_PIXELS, DataContract, ImagePreprocessing, normalise_frames  # noqa: E402
from vlmkit.data.datasets.base import sample_seed  # noqa: E402
from vlmkit.demo import synthetic_video as sv  # noqa: E402
from vlmkit.models.prompting import VISUAL_TOKEN  # noqa: E402
from vlmkit.video_sampling import VideoSampling  # noqa: E402
from vlmkit.registry import DATASETS  # noqa: E402

# name -> frames sampled, processor size, clip height, width, length (frames), fps, keyframe interval, target.
# small: the demo's clips (x264's default keyframe interval, so one keyframe); real: a keyframe a second.
SCENARIOS = {"small": (8, 32, 32, 32, 16, 10, None, 0.85), "real": (8, 224, 240, 320, 150, 25, 25, 0.95)}
FRAMES, SIZE, HEIGHT, WIDTH, LENGTH, FPS, GOP, TARGET = SCENARIOS["real"]


def use_scenario(name: str) -> None:
    global FRAMES, SIZE, HEIGHT, WIDTH, LENGTH, FPS, GOP, TARGET
    FRAMES, SIZE, HEIGHT, WIDTH, LENGTH, FPS, GOP, TARGET = SCENARIOS[name]


def make_videos(folder: Path, clips: int) -> list[str]:
    names = []
    for i in range(clips):
        name = f"clip{i:03d}.mp4"
        sv.write_video(folder / name, sv.test_pattern(LENGTH, HEIGHT, WIDTH, seed=i), fps=FPS, gop=GOP)
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
    """The same indices the pipeline samples, decoded by the library, transformed by torchvision functions;
    with ``texts``, each sample's text tokenized too (``{"frames", "input_ids"}``)."""

    def __init__(self, paths: list[str], contract: DataContract, backend: str, train: bool = False,
                 texts: list[str] | None = None):
        self.paths, self.backend, self.texts, self.tokenizer = paths, backend, texts, contract.tokenizer
        self.prep = prep = contract.preprocessing[0]
        self.indices = [contract.sampling.sampler(False)(LENGTH, FPS) for _ in paths]
        interpolation = InterpolationMode[prep.interpolation.upper()]
        # training: what a user's loader applies (PLLaVA's RandomResizedCrop + flip), drawn from the global RNG
        self.augment = v2.Compose([v2.RandomResizedCrop(prep.size, scale=(0.5, 1.0), interpolation=interpolation,
                                                        antialias=True),
                                   v2.RandomHorizontalFlip()]) if train else None

    def __len__(self):
        return len(self.paths)

    def frames(self, i):
        return torch.from_numpy(plain_decode(self.paths[i], self.indices[i], self.backend)).permute(0, 3, 1, 2)

    def __getitem__(self, i):
        prep, frames = self.prep, self.frames(i)
        if self.augment is not None:
            frames = self.augment(tv_tensors.Video(frames)).as_subclass(torch.Tensor)
        else:
            frames = F.resize(frames, prep.size, interpolation=InterpolationMode[prep.interpolation.upper()],
                              antialias=True)
            frames = F.center_crop(frames, prep.size) if prep.crop else F.resize(frames, [prep.size, prep.size])
        if self.texts is None:
            return frames
        return {"frames": frames, "input_ids": torch.tensor(self.tokenizer(self.texts[i])["input_ids"])}


def stack_with_text(samples: list) -> dict:
    """A user's collate function: frames stacked, token ids right-padded."""
    return {"pixel_values": [torch.stack([s["frames"] for s in samples])],
            "input_ids": pad_sequence([s["input_ids"] for s in samples], batch_first=True, padding_value=0)}


def check_training_clips(data, raw: RawClips) -> None:
    """Training mode: every pipeline clip is the dataset's processor, with the sample's seed, on plain frames."""
    processor = data.media.processors[0]
    for i in range(len(data)):
        seed = sample_seed(data.seed, data.epoch, i)
        assert data.media.sampler(LENGTH, FPS, rng=seed) == raw.indices[i], "the training sampler draws other frames"
        expected = processor(raw.frames(i), seed=seed)
        assert torch.equal(data[i]["pixel_values"][0], expected), f"sample {i}: not the seeded crop of the frames"


def pixels(loader: DataLoader) -> torch.Tensor:
    """Every clip of one pass, (N, T, C, H, W)."""
    return torch.cat([b["pixel_values"][0] if isinstance(b, dict) else b for b in loader])


def run_scenario(scenario: str, args: argparse.Namespace) -> dict:
    use_scenario(scenario)
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

    def dataset(backend, data_contract=contract):
        return DATASETS.build({"name": "llava_instruct", "ann_path": str(ann), "media_root": str(folder),
                               "train": args.train, "backend": backend}, contract=data_contract)
    datasets = {"pipeline": dataset(args.backend), "pipeline_same": dataset(args.baseline)}
    if args.float:
        datasets["pipeline_float"] = dataset(args.backend, former)
    prep = contract.preprocessing[0]

    def same(base: torch.Tensor, out: torch.Tensor) -> bool:
        expected = base if out.dtype == torch.uint8 else normalise_frames(base, prep)
        if args.train:  # random crops: same shape and dtype here, the pixels by check_training_clips
            return out.dtype == expected.dtype and out.shape == expected.shape
        return out.dtype == expected.dtype and out.shape == expected.shape and torch.equal(out, expected)

    paths = [str(folder / n) for n in names]
    raw = RawClips(paths, contract, args.baseline, args.train)
    data = datasets["pipeline_same"]
    # a user's text: the same rendered conversation with one visual token where vlmkit expands K of them
    # (LLaVA-style loaders insert the K features in the model, not in the text)
    texts = [re.sub(f"(?:{re.escape(VISUAL_TOKEN)})+", VISUAL_TOKEN, data.builder.encode(record).rendered.text)
             for record in data.items]
    raw_text = RawClips(paths, contract, args.baseline, args.train, texts)
    other = "pyav" if args.baseline == "decord" else "decord"  # the other library's plain loop, timed alongside
    raw_other = RawClips(paths, contract, other, args.train)
    if args.train:
        for side in datasets.values():
            check_training_clips(side, raw)
    report = {"scenario": scenario, "clips": args.clips, "frames": FRAMES, "size": SIZE, "train": args.train,
              "video": f"{LENGTH} frames {WIDTH}x{HEIGHT}", "baseline": args.baseline, "backend": args.backend,
              "auto_chose": datasets["pipeline"].media.choice.backend, "target": TARGET}
    for workers in args.workers:
        loaders = {"baseline": DataLoader(raw, batch_size=args.batch_size, num_workers=workers,
                                          collate_fn=torch.stack),
                   "baseline_text": DataLoader(raw_text, batch_size=args.batch_size, num_workers=workers,
                                               collate_fn=stack_with_text),
                   f"baseline_{other}": DataLoader(raw_other, batch_size=args.batch_size, num_workers=workers,
                                                   collate_fn=torch.stack)}
        for side, data in datasets.items():
            loaders[side] = DataLoader(data, batch_size=args.batch_size, num_workers=workers,
                                       collate_fn=data.collater)
        result = compare({name: (lambda loader=loader: pixels(loader)) for name, loader in loaders.items()},
                         args.rounds, same=same)
        line, text_line, other_line = [], [], []
        for side in datasets:
            result[side]["throughput_vs_baseline_wall"] = round(1 / result[side]["wall_ratio"], 3)
            result[side]["throughput_vs_baseline_cpu"] = round(1 / result[side]["cpu_ratio"], 3)
            for kind in ("wall", "cpu"):
                for against, name in (("baseline_text", "text"), (f"baseline_{other}", other)):
                    result[side][f"throughput_vs_{name}_{kind}"] = round(
                        result[against][f"{kind}_s"] / result[side][f"{kind}_s"], 3)
            line.append(f"{side} {result[side]['throughput_vs_baseline_wall']:.3f} / "
                        f"{result[side]['throughput_vs_baseline_cpu']:.3f}")
            text_line.append(f"{side} {result[side]['throughput_vs_text_wall']:.3f} / "
                             f"{result[side]['throughput_vs_text_cpu']:.3f}")
            other_line.append(f"{side} {result[side][f'throughput_vs_{other}_wall']:.3f} / "
                              f"{result[side][f'throughput_vs_{other}_cpu']:.3f}")
        report[f"workers_{workers}"] = result
        per_sample = result["baseline"]["cpu_s"] / args.clips * 1e3
        text_per_sample = result["baseline_text"]["cpu_s"] / args.clips * 1e3
        other_per_sample = result[f"baseline_{other}"]["cpu_s"] / args.clips * 1e3
        print(f"{scenario}{' (train)' if args.train else ''} ({report['video']}, {FRAMES} frames at {SIZE} px; "
              f"auto chose {report['auto_chose']}), workers={workers}: throughput vs plain {args.baseline} "
              f"({per_sample:.2f} ms CPU per sample), wall / CPU: {', '.join(line)} (target >= {TARGET}); "
              f"vs plain {args.baseline} + tokenizing ({text_per_sample:.2f} ms): {', '.join(text_line)}; "
              f"vs plain {other} ({other_per_sample:.2f} ms): {', '.join(other_line)}; "
              f"load {result['loadavg']}", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", nargs="+", choices=sorted(SCENARIOS), default=["small", "real"])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--backend", choices=["auto", "decord", "pyav"], default="auto",
                        help="the pipeline's backend setting")
    parser.add_argument("--baseline", choices=["decord", "pyav"], default="decord",
                        help="the library the baseline calls directly")
    parser.add_argument("--float", action="store_true", help="also time the former float32 pipeline")
    parser.add_argument("--train", action="store_true",
                        help="training mode: seeded random crop + flip (the baseline: torchvision's, unseeded)")
    args = parser.parse_args()
    pin_threads(1)
    print(json.dumps([run_scenario(scenario, args) for scenario in args.scenario]))


if __name__ == "__main__":
    main()
