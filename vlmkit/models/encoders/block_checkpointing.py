"""Activation checkpointing of a vision tower's transformer blocks, with the saved inputs optionally on the CPU.

``gradient_checkpointing`` alone uses transformers' own checkpointing (torch.utils.checkpoint, non-reentrant).
``checkpoint_offload`` wraps each block with fairscale's ``checkpoint_wrapper(block, offload_to_cpu=True)`` (the
wrapper LAVIS puts on its BLIP ViT blocks), which recomputes the block in the backward pass *and* keeps the
block's input (the one tensor checkpointing still saves) in CPU memory until then.  torch's counterparts
(``torch.distributed.algorithms._checkpoint``: a private module) either do not offload (``checkpoint_wrapper``)
or offload every tensor the block saves (``offload_wrapper``), and both add a wrapper module to parameter names.

The wrapper patches ``block.forward`` in place (no wrapper module), so parameter names and state_dict keys stay
those of the published tower.  No torch import at module level: config validation runs the rule below from the
schema index without importing the towers.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from vlmkit.errors import ConfigError


def checkpointing_config_problems(cls: Any, values: Mapping[str, Any], path: str) -> list[ConfigError]:
    """Offloading saves only what checkpointing keeps, so it needs checkpointing on."""
    if values.get("checkpoint_offload") and not values.get("gradient_checkpointing"):
        return [ConfigError(f"{path}.checkpoint_offload",
                            "offloading moves the block inputs that activation checkpointing keeps to the CPU, so "
                            "it needs gradient_checkpointing: true (set both, or drop checkpoint_offload)")]
    return []


def checkpoint_blocks_offloaded(blocks: Iterable[Any]) -> None:
    """Wrap each block with fairscale's checkpoint wrapper, its saved inputs offloaded to the CPU."""
    from fairscale.nn.checkpoint.checkpoint_activations import checkpoint_wrapper

    for block in blocks:
        checkpoint_wrapper(block, offload_to_cpu=True)  # patches block.forward; returns the same module
