"""What every runner sets up the same way: precision names, autocast."""
from __future__ import annotations

import contextlib
from typing import Optional

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> contextlib.AbstractContextManager:
    """Mixed precision on ``device`` in ``dtype`` (``PRECISIONS``' value: None is fp32, no autocast)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
