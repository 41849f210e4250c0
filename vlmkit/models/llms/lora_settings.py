"""The ``lora:`` settings of an LLM: their schema (validated at config time) and the values ``apply_lora`` reads.

A module of its own, importing neither torch nor peft, so that validating a config never has to import them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from vlmkit.errors import ConfigError
from vlmkit.schema import NonNegative, Positive, check_signature


@dataclass(frozen=True)
class LoraSettings:
    """peft LoRA settings. ``alpha`` defaults to ``r``; ``eval_alpha``: an alpha used in eval mode only (PLLaVA's
    post-training scaling: train at 32, evaluate at 4)."""

    r: Positive[int]
    alpha: Optional[Positive[float]] = None
    eval_alpha: Optional[Positive[float]] = None
    dropout: NonNegative[float] = 0.0
    target_modules: Union[str, list[str]] = "all-linear"
    bias: Literal["none", "all", "lora_only"] = "none"
    modules_to_save: Optional[list[str]] = None

    @classmethod
    def config_problems(cls, values: Mapping[str, Any], path: str) -> list[ConfigError]:
        targets, problems = values.get("target_modules"), []
        if not targets:
            problems.append(ConfigError(f"{path}.target_modules", "expected 'all-linear', a module-name regex or a "
                                                                  f"non-empty list of names, got {targets!r}"))
        if values.get("dropout", 0) >= 1:
            problems.append(ConfigError(f"{path}.dropout", f"must be below 1, got {values['dropout']}"))
        return problems

    @classmethod
    def from_config(cls, lora: Mapping[str, Any], where: str = "lora") -> "LoraSettings":
        """The settings of a ``lora:`` mapping, or a ConfigError naming every problem (the schema's own check)."""
        errors = check_signature(cls, lora, where, cls.__name__)
        if errors:
            raise errors[0] if len(errors) == 1 else ConfigError.many(errors)
        return cls(**lora)

    @property
    def scale_alpha(self) -> float:
        """The alpha of training (``alpha``, or ``r`` when unset)."""
        return float(self.r if self.alpha is None else self.alpha)
