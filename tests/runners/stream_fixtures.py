"""A tiny VideoLLM and webdataset caption shards written by the test (synthetic mp4s), for runner tests."""
from __future__ import annotations

import copy
import functools
import json
import tempfile
from pathlib import Path

import torch

from vlmkit.demo import synthetic_video as sv


@functools.cache
def _tiny_model():
    from vlmkit.assemble import build_model
    from vlmkit.config import load_config

    folder = Path(tempfile.mkdtemp(prefix="vlmkit-runner-tiny-"))
    (folder / "exp.yaml").write_text("model: {preset: tiny/pooling}\n")
    torch.manual_seed(0)
    return build_model(load_config(folder / "exp.yaml"))


def tiny_video_llm():
    """A fresh copy of the same randomly initialised tiny VideoLLM (built once per test process)."""
    return copy.deepcopy(_tiny_model())


def write_shards(root: Path, shards: int, per_shard: int, bad: tuple[tuple[int, int], ...] = ()) -> str:
    """``train-00000{0..shards-1}.tar`` with ``per_shard`` captioned mp4s each; (shard, i) in ``bad`` has no
    caption (the dataset skips it).  Returns the brace pattern."""
    import webdataset as wds

    root.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        with wds.TarWriter(str(root / f"train-{s:06d}.tar")) as sink:
            for i in range(per_shard):
                video = root / "clip.mp4"
                sv.write_video(video, sv.test_pattern(6, 32, 32, seed=s * 100 + i), fps=6)
                caption = {"title": "no caption"} if (s, i) in bad else {"caption": f"clip {s} {i} colour {i % 3}"}
                sink.write({"__key__": f"s{s}_{i}", "mp4": video.read_bytes(), "json": json.dumps(caption).encode()})
    return f"train-{{000000..{shards - 1:06d}}}.tar"
