"""Videos and questions -> the batch an evaluation dataset would collate for them.

A video file (or a folder of frames) goes through the datasets' own ``SampleBuilder`` (decode, the contract's
deterministic sampler, the evaluation processors, the generation prompt, left padding), so ``vlmkit.load``
sees exactly the pixels and tokens ``evaluate.py`` sees. Frames already in memory skip only the decoding: the
same sampler picks from them, the same processors prepare them.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import torch

from vlmkit.contracts import INSTRUCTION_IDS, PLACEHOLDERS
from vlmkit.data.datasets.base import Record, SampleBuilder, fit_frame_count, media_turn
from vlmkit.errors import DataError

Video = Union[str, os.PathLike, torch.Tensor, np.ndarray]


def user_turns(messages: Sequence[dict], placeholder: str) -> list[dict]:
    """A chat as a conversation: the video placeholder goes in front of the first user message, unless a
    message already holds one."""
    turns = [dict(m) for m in messages]
    if not turns:
        raise DataError("a chat needs at least one user message")
    text_of = [str(t.get("content", t.get("value", ""))) for t in turns]
    if not any(p in text for text in text_of for p in PLACEHOLDERS):
        first = next((i for i, t in enumerate(turns) if str(t.get("role", t.get("from"))).lower() in
                      ("user", "human")), None)
        if first is None:
            raise DataError("a chat needs a user message")
        key = "content" if "content" in turns[first] else "value"
        turns[first][key] = media_turn(text_of[first], placeholder)
    return turns


def frames_tensor(frames: Union[torch.Tensor, np.ndarray]) -> torch.Tensor:
    """uint8 frames (T, C, H, W); (T, H, W, C) arrays (decord, PyAV, PIL stacks) are permuted."""
    tensor = torch.as_tensor(np.asarray(frames)) if isinstance(frames, np.ndarray) else frames
    if tensor.ndim != 4 or tensor.dtype != torch.uint8:
        raise DataError(f"frames must be a uint8 tensor or array (T, H, W, 3) or (T, 3, H, W), got "
                        f"{tuple(tensor.shape)} {tensor.dtype}")
    return tensor if tensor.shape[1] in (1, 3) and tensor.shape[-1] not in (1, 3) else tensor.permute(0, 3, 1, 2)


def build_sample(builder: SampleBuilder, conversation: list[dict], video: Video, index: int,
                 answer_prefix: str = "", fps: float = 1.0) -> dict:
    """One evaluation sample of ``conversation`` about ``video`` (a path, or frames sampled at ``fps``)."""
    if isinstance(video, (str, os.PathLike)):
        path = os.fspath(video)
        if not os.path.exists(path):
            raise DataError(f"{path}: no such video file or frame folder")
        record = Record(str(index), path, conversation, answer_prefix=answer_prefix)
        return builder.build(record, seed=0)
    record = Record(str(index), "<frames>", conversation, answer_prefix=answer_prefix)
    frames = frames_tensor(video)
    picks = builder.media.sampler(frames.shape[0], fps, rng=None)
    frames = fit_frame_count(frames[torch.as_tensor(list(picks), dtype=torch.long)], builder.media.num_frames)
    encoded = builder.encode(record)
    sample = {"input_ids": torch.tensor(encoded.input_ids, dtype=torch.long),
              "labels": torch.tensor(encoded.labels, dtype=torch.long),
              "pixel_values": builder.media.process(frames), "id": record.id,
              "meta": {"id": record.id, "media": record.media}}
    if builder.instruction:
        sample[INSTRUCTION_IDS] = builder.instruction_ids(record)
    return sample


def build_batch(builder: SampleBuilder, conversations: Sequence[list[dict]], videos: Sequence[Video],
                answer_prefix: str = "", fps: float = 1.0) -> dict[str, Any]:
    samples = [build_sample(builder, conv, video, i, answer_prefix, fps)
               for i, (conv, video) in enumerate(zip(conversations, videos))]
    return builder.collate(samples)
