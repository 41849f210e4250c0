"""The visual tokens of one video must leave room for text within ``max_length``.

Otherwise every sample fails at data time (or, with answer-tail truncation, trains on nothing); the model says so
when it is built. For pool-level models (VideoGPT+'s token-adapter sweep) the error lists the pool levels that fit.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from vlmkit.models.pooling.adaptive_2d import AdaptiveAvgPool2dFrames

POOL_LEVELS = (1, 2, 4, 8, 16)  # the VideoGPT+ token-adapter fork's sweep


def check_room_for_text(branches: Sequence, frames: int, visual_tokens: int, max_length: Optional[int]) -> None:
    if max_length is None or visual_tokens < max_length:
        return
    counts = [branch.tokens(frames) for branch in branches]
    fits = pool_levels_that_fit(branches, frames, max_length)
    hint = ""
    if fits is not None:
        hint = (f"; with this max_length the pool levels that fit are {fits} (set every branch's pool_level)"
                if fits else f"; no pool level of {list(POOL_LEVELS)} fits it")
    raise ValueError(f"model.max_length: {max_length} tokens leave no room for text, since one video gives "
                     f"{visual_tokens} visual tokens (per branch {counts}); raise max_length above "
                     f"{visual_tokens} (as far as the LLM's context allows) or use fewer visual tokens{hint}")


def pool_level_stages(branches: Sequence) -> list[AdaptiveAvgPool2dFrames]:
    return [stage for branch in branches for stage in branch.stages
            if isinstance(stage, AdaptiveAvgPool2dFrames) and stage.pool_level is not None]


def pool_levels_that_fit(branches: Sequence, frames: int, max_length: int) -> Optional[list[int]]:
    """The pool levels (all pool-level stages set alike) whose visual tokens stay below ``max_length``; None for
    a model without pool-level stages."""
    stages = pool_level_stages(branches)
    if not stages:
        return None
    saved = [stage.pool_level for stage in stages]
    fits = []
    try:
        for level in POOL_LEVELS:
            for stage in stages:
                stage.pool_level = level
            if sum(branch.tokens(frames) for branch in branches) < max_length:
                fits.append(level)
    finally:
        for stage, level in zip(stages, saved):
            stage.pool_level = level
    return fits
