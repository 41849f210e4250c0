"""Start-up checks that catch silent training failures before the first step."""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import torch

from vlmkit.contracts import IGNORE_INDEX
from vlmkit.errors import DataError



def trainable_by_module(model: torch.nn.Module) -> dict[str, dict[str, int]]:
    """Trainable and frozen parameter counts per top-level module."""
    trainable: Counter = Counter()
    frozen: Counter = Counter()
    for name, param in model.named_parameters():
        top = name.split(".")[0]
        (trainable if param.requires_grad else frozen)[top] += param.numel()
    return {top: {"trainable": trainable[top], "frozen": frozen[top]} for top in sorted({*trainable, *frozen})}


def check_dataset_sizes(datasets: Mapping[str, Any], splits: list[str]) -> dict[str, int | None]:
    """Records per split; None for a stream without a length (the trainer then asks for max_steps)."""
    sizes = {}
    for split in splits:
        if split not in datasets:
            raise DataError(f"split '{split}' is not among the built datasets ({', '.join(datasets) or 'none'})")
        size = len(datasets[split]) if hasattr(datasets[split], "__len__") else None
        if size == 0:
            raise DataError(f"dataset '{split}' has 0 records: check its annotation paths and filters")
        sizes[split] = size
    return sizes


def supervised_fraction(batch: Mapping[str, Any]) -> float | None:
    """Share of label positions that are supervised (not -100); None when the batch has no 'labels'."""
    labels = batch.get("labels") if isinstance(batch, Mapping) else None
    if not isinstance(labels, torch.Tensor):
        return None
    return float((labels != IGNORE_INDEX).sum()) / max(labels.numel(), 1)


def check_supervision(batch: Mapping[str, Any], where: str) -> float | None:
    """Raise when a batch has labels but none of them is supervised (the loss would be 0 or NaN)."""
    fraction = supervised_fraction(batch)
    if fraction == 0.0:
        raise DataError(f"{where}: the batch has 0 supervised tokens (every label is {IGNORE_INDEX}); answers "
                        f"were probably truncated away (raise the max length) or the label mask is wrong")
    return fraction
