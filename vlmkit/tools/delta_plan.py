"""Pair the tensors of a base checkpoint with those of a delta (or target) and check that they fit together.

Every problem is collected and reported at once, each naming its tensor, before any data is read: a wrong base
model fails in seconds, not after an hour of merging.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vlmkit.errors import DataError
from vlmkit.tools.checkpoint_files import Checkpoint, TensorInfo


@dataclass(frozen=True)
class TensorPair:
    name: str
    base: TensorInfo
    other: TensorInfo  # the delta when applying, the target when making a delta
    out_dtype: torch.dtype

    @property
    def grown_rows(self) -> int:
        """Rows that exist only in `other` (vocabulary growth); 0 for every other tensor."""
        return self.other.shape[0] - self.base.shape[0] if self.other.shape else 0


@dataclass
class VocabGrowth:
    base_rows: int
    new_rows: int
    tensors: list[str] = field(default_factory=list)


def _vocab_size(config: dict | None) -> int | None:
    if config is None:
        return None
    text_config = config.get("text_config") or {}
    return config.get("vocab_size") or text_config.get("vocab_size")


def _config_summary(config: dict | None) -> str:
    if config is None:
        return "no config.json"
    config = {**(config.get("text_config") or {}), **config}
    keys = ("architectures", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    return ", ".join(f"{key}={config[key]}" for key in keys if key in config)


def pair_tensors(base: Checkpoint, other: Checkpoint, role: str,
                 dtype: torch.dtype | None) -> tuple[list[TensorPair], VocabGrowth | None]:
    """The tensors in `other`'s order with their output dtype, and the vocabulary growth if any.

    role names `other` in messages ("delta" or "target"). A shape may differ only by extra leading rows in `other`,
    by the same count for every such tensor (the embedding and output rows of added tokens).
    """
    problems: list[str] = []
    for name in base.tensors:
        if name not in other.tensors:
            problems.append(f"{name}: in the base but missing from the {role}")
    for name in other.tensors:
        if name not in base.tensors:
            problems.append(f"{name}: in the {role} but not in the base (unexpected tensor)")

    growth: VocabGrowth | None = None
    pairs: list[TensorPair] = []
    for name, other_info in other.tensors.items():
        base_info = base.tensors.get(name)
        if base_info is None:
            continue
        if base_info.shape != other_info.shape:
            grows_rows = (len(base_info.shape) == len(other_info.shape) >= 1
                          and base_info.shape[1:] == other_info.shape[1:]
                          and other_info.shape[0] > base_info.shape[0])
            if not grows_rows:
                problems.append(f"{name}: shape {list(base_info.shape)} in the base but {list(other_info.shape)} in "
                                f"the {role}")
                continue
            growth = growth or VocabGrowth(base_info.shape[0], other_info.shape[0])
            if (growth.base_rows, growth.new_rows) != (base_info.shape[0], other_info.shape[0]):
                problems.append(f"{name}: grows from {base_info.shape[0]} to {other_info.shape[0]} rows, while "
                                f"{growth.tensors[0]} grows from {growth.base_rows} to {growth.new_rows}")
                continue
            growth.tensors.append(name)
        if other_info.dtype.is_floating_point != base_info.dtype.is_floating_point:
            problems.append(f"{name}: dtype {base_info.dtype} in the base but {other_info.dtype} in the {role}")
            continue
        out_dtype = dtype if dtype is not None and other_info.dtype.is_floating_point else other_info.dtype
        pairs.append(TensorPair(name, base_info, other_info, out_dtype))

    if growth is not None:
        problems += _check_growth_against_configs(growth, base, other, role)
    if not other.tensors:
        problems.append(f"the {role} holds no tensors")
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise DataError(
            f"the base and the {role} do not fit together ({len(problems)} problems):\n{listed}{more}\n"
            f"  base:  {_config_summary(base.config())}\n  {role}: {_config_summary(other.config())}\n"
            f"Check that the base is the exact model the {role} was made against (e.g. LLaMA-7B vs 13B, "
            "Vicuna v0 vs v1.1)."
        )
    return pairs, growth


def _check_growth_against_configs(growth: VocabGrowth, base: Checkpoint, other: Checkpoint, role: str) -> list[str]:
    """Grown rows must be the vocabulary: when configs state vocab sizes, the row counts must equal them."""
    problems = []
    for checkpoint, rows, label in ((base, growth.base_rows, "base"), (other, growth.new_rows, role)):
        vocab = _vocab_size(checkpoint.config())
        if vocab is not None and vocab != rows:
            problems.append(f"{growth.tensors[0]}: grows to {growth.new_rows} rows from {growth.base_rows}, but the "
                            f"{label} config.json says vocab_size={vocab}; only vocabulary rows may grow")
    return problems
