"""The trainer's rules across fields, in a module of their own (no torch import): config validation runs them
from the schema index without importing the trainer (``Trainer.config_problems`` is this function)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vlmkit.errors import ConfigError


def trainer_config_problems(cls: Any, values: Mapping[str, Any], path: str) -> list[ConfigError]:
    """Rules across fields, checked by config validation (vlmkit.schema) and again when the trainer is built."""
    epochs, steps, problems = values.get("max_epochs"), values.get("max_steps"), []
    if (epochs is None) == (steps is None):
        problems.append(ConfigError(path, f"set exactly one of max_epochs and max_steps (got max_epochs={epochs}, "
                                          f"max_steps={steps})"))
    bad = values.get("max_bad_fraction")
    if bad is not None and not 0 <= bad <= 1:
        problems.append(ConfigError(f"{path}.max_bad_fraction", f"must be within [0, 1] (or null), got {bad}"))
    if values.get("monitor") is not None and not values.get("valid_splits"):
        problems.append(ConfigError(f"{path}.monitor", f"monitoring '{values['monitor']}' needs valid_splits "
                                                       "to evaluate on"))
    return problems
