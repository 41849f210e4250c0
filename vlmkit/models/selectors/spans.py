"""Span arithmetic of VideoTGB's temporal grounding sampler, as plain functions (tested on hand-made inputs).

- ``gumbel_span_draws``: start/end positions drawn from the start/end logits with Gumbel-max noise.
- ``span_frames``: the union of drawn spans, mapped from flow positions to decoded frames and reduced to K.
- ``best_span``: the pseudo-label span, the largest rectangle under the min-shifted per-frame scores.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch


def gumbel_span_draws(start_logits: torch.Tensor, end_logits: torch.Tensor, draws: int = 2,
                      temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``draws`` (start, end) position pairs per sample: (B, draws, 2), each the argmax of logits/temperature
    plus Gumbel noise, i.e. a sample of softmax(logits / temperature). Start and end are drawn independently.

    The published code calls ``F.gumbel_softmax(..., tau=0.5).argmax()``, where tau cannot change the argmax;
    that is temperature 1.0 here.
    """
    if start_logits.shape != end_logits.shape or start_logits.dim() != 2:
        raise ValueError(f"start/end logits must both be (B, L), got {tuple(start_logits.shape)} and "
                         f"{tuple(end_logits.shape)}")
    if temperature <= 0 or draws < 1:
        raise ValueError(f"temperature must be > 0 and draws >= 1, got {temperature} and {draws}")
    logits = torch.stack([start_logits, end_logits], dim=1).float() / temperature  # (B, 2, L)
    picks = []
    for _ in range(draws):
        uniform = torch.rand(logits.shape, generator=generator, device=logits.device if generator is None
                             else generator.device).to(logits.device)
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))
        picks.append((logits + gumbel).argmax(dim=-1))
    return torch.stack(picks, dim=1)


def reduce_to(indices: Sequence[int], k: int) -> list[int]:
    """Exactly ``k`` indices from a sorted list: duplicate every index until there are enough, then take the
    midpoints of ``k`` equal bins (the published rule)."""
    picked = list(indices)
    if not picked:
        raise ValueError("cannot reduce an empty index list")
    while len(picked) < k:
        picked = [i for i in picked for _ in (0, 1)]
    if len(picked) > k:
        bounds = np.linspace(0, len(picked), k + 1).astype(int)
        picked = [picked[(bounds[j] + bounds[j + 1] - 1) // 2] for j in range(k)]
    return picked


def to_frame(position: int, length: int, num_frames: int) -> int:
    """Flow position (of ``length``) -> decoded frame (of ``num_frames``), truncating as published."""
    return 0 if length <= 1 else int(position * (num_frames - 1) / (length - 1))


def span_frames(pairs: Sequence[tuple[int, int]], length: int, num_frames: int, k: int) -> list[int]:
    """The ``k`` frames (sorted, in 0..num_frames-1) covered by the union of the (start, end) flow-position
    pairs of one video with ``length`` valid flow positions.

    A pair outside the video, or (0, 0), stands for the whole video; a pair with end < start covers nothing;
    an empty union means every frame (all as published).
    """
    chosen: set[int] = set()
    for start, end in pairs:
        start, end = int(start), int(end)
        if start >= length or end >= length or (start == 0 and end == 0):
            start, end = 0, length - 1
        chosen.update(range(to_frame(start, length, num_frames), to_frame(end, length, num_frames) + 1))
    ordered = sorted(chosen) or list(range(num_frames))
    return reduce_to(ordered, k)


def ratio_span_frames(start: float, end: float, num_frames: int, k: int) -> list[int]:
    """``k`` frames spread over a span given as [start, end] fractions of the video (pseudo-label files)."""
    first = int(min(max(start, 0.0), 1.0) * (num_frames - 1))
    last = int(min(max(end, 0.0), 1.0) * (num_frames - 1))
    return reduce_to(list(range(first, max(first, last) + 1)), k)


def best_span(scores: Sequence[float]) -> tuple[int, int]:
    """The pseudo-label span (start, end), inclusive indices into ``scores``.

    Scores are shifted by their minimum and the largest rectangle under that histogram (monotone stack with
    zero sentinels at both ends) gives the span; ties keep the first found, no rectangle means the full range.
    """
    values = [float(s) for s in scores]
    if not values:
        raise ValueError("best_span needs at least one score")
    low = min(values)
    heights = [0.0] + [v - low for v in values] + [0.0]
    best, span = 0.0, (0, len(values) - 1)
    stack: list[int] = []
    for i, height in enumerate(heights):
        while stack and heights[stack[-1]] > height:
            top = stack.pop()
            area = (i - stack[-1] - 1) * heights[top]
            if area > best:
                # in sentinel coordinates the bar spans stack[-1]+1 .. i-1, i.e. stack[-1] .. i-2 in scores
                best, span = area, (stack[-1], i - 2)
        stack.append(i)
    return span
