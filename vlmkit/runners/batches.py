"""Batches on their way to the model: the one place a (nested) batch moves to a device."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor in it (in mappings, lists and tuples, at any depth) on ``device``; other values
    (ids, 'meta' records) as they are."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch
