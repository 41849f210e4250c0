"""What every runner sets up the same way: precision names, autocast."""
from __future__ import annotations

import contextlib
from typing import Optional

import torch

from vlmkit.dtypes import TORCH_NAMES, torch_dtype

# autocast dtype of each run.precision (names from vlmkit.dtypes); fp32 runs without autocast
PRECISIONS = {name: None if name == "fp32" else torch_dtype(name) for name in TORCH_NAMES}


def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> contextlib.AbstractContextManager:
    """Mixed precision on ``device`` in ``dtype`` (``PRECISIONS``' value: None is fp32, no autocast)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
