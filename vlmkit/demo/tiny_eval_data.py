"""``python -m vlmkit.demo.tiny_eval_data --out DIR``: the small data the tiny evaluation configs
(``eval_configs/tiny/*.yaml``) read, generated locally in seconds, nothing downloaded.

Layout under DIR (the configs find it through ``$VLMKIT_TINY_DATA``, default ``output/tiny_eval_data``)::

    synthetic/   shape videos with test_mc.json, test_open_qa.json, test_captions.json (vlmkit.demo.synthetic)
    gebc/        annotations.json ({video: [boundaries]}), video_info.json, features/<key>/<video>.npy with
                 the widths of the gebc/tiny model (q_former_tokens (T, 4, 32), intern_video 8, omni 16, clip 8)
    needle/      needles.json and one haystack video per (haystack frames, depth, needle colour)
    judge/       a tiny LLaMA (tiny_llama preset config, random weights) with the built-in word tokenizer,
                 in save_pretrained layout, for the ``transformers_judge``

Every part is written once: a part whose ``done.json`` records the same parameters is left alone.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vlmkit.metrics.niah import insert_needle

GEBC_FEATURES = {"q_former_tokens": (4, 32), "intern_video": (8,), "omni": (16,), "clip": (8,)}
GEBC_LABELS = ("Change of Action", "Change of Object", "Change of Color")
GEBC_WORDS = ("a man", "a woman", "a red car", "a dog", "the child", "a blue ball")
GEBC_STATES = ("is walking", "is sitting", "is running", "stands still", "holds a cup", "opens the door")
NEEDLE_COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}
FRAME_SIZE = 32


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))


def _done(folder: Path, params: dict) -> bool:
    marker = folder / "done.json"
    return marker.is_file() and json.loads(marker.read_text()) == params


def _mark_done(folder: Path, params: dict) -> None:
    _write_json(folder / "done.json", params)


# ---------------------------------------------------------------------------------------------- parts
def write_synthetic(out: Path, videos: int, seed: int) -> Path:
    """Shape videos with MC, open QA and caption annotations (test split only)."""
    from vlmkit.demo.synthetic import ensure_synthetic_dataset

    ensure_synthetic_dataset(out / "synthetic", train=0, test=videos, seed=seed, workers=1)
    return out / "synthetic"


def write_gebc(out: Path, videos: int, boundaries: int, frames: int, seed: int) -> Path:
    """GEBC-format annotations with captions, durations, and random feature arrays per video."""
    folder = out / "gebc"
    params = {"videos": videos, "boundaries": boundaries, "frames": frames, "seed": seed,
              "features": {k: list(v) for k, v in GEBC_FEATURES.items()}}
    if _done(folder, params):
        return folder
    rng = np.random.default_rng(seed)
    annotations, info = {}, {}
    for v in range(videos):
        video = f"gebcvid{v:04d}"
        duration = 10.0
        info[video] = duration
        cuts = np.linspace(0.0, duration, boundaries + 2)
        annotations[video] = [
            {"boundary_id": f"{video}_{k}", "timestamp": float(cuts[k + 1]), "prev_timestamp": float(cuts[k]),
             "next_timestamp": float(cuts[k + 2]), "label": GEBC_LABELS[(v + k) % len(GEBC_LABELS)],
             "subject": str(rng.choice(GEBC_WORDS)), "status_before": str(rng.choice(GEBC_STATES)),
             "status_after": str(rng.choice(GEBC_STATES))}
            for k in range(boundaries)]
        for key, shape in GEBC_FEATURES.items():
            steps = frames if key == "q_former_tokens" else int(rng.integers(5, 12))  # others vary in length
            path = folder / "features" / key / f"{video}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, rng.standard_normal((steps, *shape)).astype(np.float32))
    _write_json(folder / "annotations.json", annotations)
    _write_json(folder / "video_info.json", info)
    _mark_done(folder, params)
    return folder


def _haystack_frames(count: int, seed: int) -> list[np.ndarray]:
    """Grey-level noise frames: nothing in them names a colour."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(40, 200, size=(count, FRAME_SIZE, FRAME_SIZE, 1), dtype=np.uint8)
    return list(np.repeat(grey, 3, axis=-1))


def write_needle(out: Path, haystack_lengths: Sequence[int], depths: Sequence[float], needle_frames: int,
                 seed: int) -> Path:
    """One video per (haystack frames, depth, colour): a solid-colour needle clip spliced into grey noise; the
    question asks its colour (four options)."""
    from vlmkit.demo.synthetic_video import write_video

    folder = out / "needle"
    params = {"haystack_lengths": list(haystack_lengths), "depths": list(depths), "needle_frames": needle_frames,
              "seed": seed, "colours": list(NEEDLE_COLOURS)}
    if _done(folder, params):
        return folder
    colours = list(NEEDLE_COLOURS)
    entries = []
    for n in haystack_lengths:
        for d in depths:
            for c, colour in enumerate(colours[:2]):  # two needles per cell
                needle = [np.full((FRAME_SIZE, FRAME_SIZE, 3), NEEDLE_COLOURS[colour], np.uint8)] * needle_frames
                frames, _ = insert_needle(_haystack_frames(n, seed + n), needle, d)
                name = f"videos/haystack{n}_depth{round(d * 100):03d}_{colour}.mp4"
                (folder / "videos").mkdir(parents=True, exist_ok=True)
                write_video(folder / name, np.stack(frames), fps=8.0)
                entries.append({"id": f"n{n}-d{d:g}-{colour}", "video": name,
                                "question": "What colour is the frame that is not grey?",
                                "candidates": colours, "answer": colour, "task_type": "needle",
                                "haystack_frames": int(n), "needle_depth": float(d)})
    _write_json(folder / "needles.json", entries)
    _mark_done(folder, params)
    return folder


def write_judge(out: Path) -> Path:
    """The tiny_llama preset's LLaMA config with random weights and the built-in word tokenizer."""
    import torch
    from omegaconf import OmegaConf
    from transformers import LlamaConfig, LlamaForCausalLM

    from vlmkit.config import CONFIG_ROOT
    from vlmkit.models.llms.local_tokenizer import builtin_tokenizer

    folder = out / "judge"
    preset = OmegaConf.to_container(OmegaConf.load(CONFIG_ROOT / "models" / "llms" / "tiny_llama.yaml"))
    tokenizer = builtin_tokenizer(preset["tokenizer"])
    config = {**preset["config"], "vocab_size": max(preset["config"]["vocab_size"], len(tokenizer)),
              "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
              "pad_token_id": tokenizer.pad_token_id}
    params = {"config": config}
    if _done(folder, params):
        return folder
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**config)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _mark_done(folder, params)
    return folder


def generate(out: str | Path, videos: int = 3, seed: int = 0, parts: Sequence[str] = ("synthetic", "gebc", "needle",
             "judge"), haystack_lengths: Sequence[int] = (8, 16), depths: Sequence[float] = (0.0, 0.5, 1.0)) -> Path:
    """Write the requested parts under ``out``; returns ``out``."""
    out = Path(out)
    unknown = sorted(set(parts) - {"synthetic", "gebc", "needle", "judge"})
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; accepted: synthetic, gebc, needle, judge")
    if "synthetic" in parts:
        write_synthetic(out, videos, seed)
    if "gebc" in parts:
        write_gebc(out, videos=max(1, videos - 1), boundaries=2, frames=4, seed=seed)
    if "needle" in parts:
        write_needle(out, haystack_lengths, depths, needle_frames=2, seed=seed)
    if "judge" in parts:
        write_judge(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlmkit.demo.tiny_eval_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/tiny_eval_data", help="output directory")
    parser.add_argument("--videos", type=int, default=3, help="synthetic test videos (each gives ~4 MC questions)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="synthetic,gebc,needle,judge", help="comma-separated subset")
    parser.add_argument("--haystack-lengths", default="8,16", help="haystack frame counts, comma-separated")
    parser.add_argument("--depths", default="0,0.5,1", help="needle depths in [0, 1], comma-separated")
    args = parser.parse_args(argv)
    out = generate(args.out, args.videos, args.seed, [p for p in args.parts.split(",") if p],
                   [int(x) for x in args.haystack_lengths.split(",")], [float(x) for x in args.depths.split(",")])
    print(f"tiny evaluation data in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
