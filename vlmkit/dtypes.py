"""Floating-point type names, both spellings in one table.

Configs name a run's precision the mixed-precision way (``run.precision: bf16``, ``--dtype fp16``) and a
component's weights the torch/transformers way (``dtype: bfloat16``). Each spelling stays where users know it, and
every place that reads either goes through this table, so both always mean the same type. Core module: torch is
imported only when a torch dtype is asked for.
"""
from __future__ import annotations

from typing import Any, Literal

Precision = Literal["fp32", "bf16", "fp16"]            # run.precision, strategy param_dtype, CLI --dtype
WeightDType = Literal["float32", "float16", "bfloat16"]  # a component's ``dtype``

# short (precision) name -> torch name
TORCH_NAMES: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
PRECISION_NAMES: dict[str, str] = {torch_name: short for short, torch_name in TORCH_NAMES.items()}
BYTES: dict[str, int] = {"fp32": 4, "bf16": 2, "fp16": 2}


def precision_name(value: Any) -> str:
    """'fp32' / 'bf16' / 'fp16' for either spelling or a torch dtype; a clear error for anything else."""
    if value in TORCH_NAMES:
        return value
    if value in PRECISION_NAMES:
        return PRECISION_NAMES[value]
    name = str(value).removeprefix("torch.")
    if name in PRECISION_NAMES and type(value).__name__ == "dtype":
        return PRECISION_NAMES[name]
    raise ValueError(f"unknown floating-point type {value!r}; accepted: {', '.join(TORCH_NAMES)} or "
                     f"{', '.join(PRECISION_NAMES)}")


def torch_name(value: Any) -> str:
    """'float32' / 'bfloat16' / 'float16' for either spelling or a torch dtype."""
    return TORCH_NAMES[precision_name(value)]


def torch_dtype(value: Any):
    """The torch dtype of either spelling (or a torch dtype, returned as is)."""
    import torch

    return getattr(torch, torch_name(value))
