"""Shared helpers of the dataset tests: one tiny model's data contract per test process, tiny media files."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vlmkit.demo import synthetic_video as sv

FRAMES, HEIGHT, WIDTH, FPS = 20, 48, 64, 10


@functools.cache
def tiny_model(preset: str = "tiny/pooling"):
    import tempfile

    from vlmkit.assemble import build_model
    from vlmkit.config import load_config

    folder = Path(tempfile.mkdtemp(prefix="vlmkit-tiny-"))
    (folder / "exp.yaml").write_text(f"model: {{preset: {preset}}}\n")
    torch.manual_seed(0)
    return build_model(load_config(folder / "exp.yaml"))


@pytest.fixture(scope="session")
def contract():
    return tiny_model().data_contract()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """good.mp4, other.mp4, still.png and broken files (missing.mp4 is absent on purpose)."""
    root = tmp_path_factory.mktemp("ds_media")
    sv.write_video(root / "good.mp4", sv.test_pattern(FRAMES, HEIGHT, WIDTH), fps=FPS)
    sv.write_video(root / "other.mp4", sv.test_pattern(FRAMES, HEIGHT, WIDTH, seed=3), fps=FPS)
    sv.write_video(root / "short.mp4", sv.test_pattern(2, HEIGHT, WIDTH), fps=FPS)
    sv.write_image(root / "still.png", sv.test_pattern(1, HEIGHT, WIDTH)[0])
    sv.write_corrupt(root / "corrupt.mp4")
    (root / "empty.mp4").write_bytes(b"")
    sv.write_truncated(root / "good.mp4", root / "truncated.mp4", keep_fraction=0.3)
    sv.write_video(root / "black.mp4", np.zeros((6, HEIGHT, WIDTH, 3), np.uint8), fps=FPS)
    return root


def write_json(path: Path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def conversation(question: str, answer: str, placeholder: str = "<video>") -> list[dict]:
    return [{"from": "human", "value": f"{placeholder}\n{question}"}, {"from": "gpt", "value": answer}]
