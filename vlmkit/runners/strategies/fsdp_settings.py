"""The FSDP strategy's settings that cross fields, checked at config validation (no torch import here: the schema
index runs this rule without importing the strategy)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Optional

from vlmkit.dtypes import precision_name
from vlmkit.errors import ConfigError

Offload = Optional[Literal["cpu"]]
DTYPE_SETTINGS = ("param_dtype", "reduce_dtype", "output_dtype")


def precision_of(values: Mapping[str, Any], key: str, path: str) -> Optional[str]:
    """'fp32' / 'bf16' / 'fp16' or None; a clear error for any other value."""
    value = values.get(key)
    if value is None:
        return None
    try:
        return precision_name(value)
    except ValueError as err:
        raise ConfigError(f"{path}.{key}", f"{err} (or null)") from err


def fsdp_config_problems(cls: Any, values: Mapping[str, Any], path: str) -> list[ConfigError]:
    """Every dtype is a known one; gradients computed in bf16 may exceed float16's range, so they are not
    reduced in fp16."""
    try:
        param, reduce = (precision_of(values, key, path) for key in ("param_dtype", "reduce_dtype"))
        precision_of(values, "output_dtype", path)
    except ConfigError as err:
        return [err]
    if reduce == "fp16" and param == "bf16":
        return [ConfigError(f"{path}.reduce_dtype", "fp16 cannot hold every bf16 gradient (its range is far "
                                                    "smaller); with param_dtype bf16 reduce in bf16 or fp32")]
    return []
