"""Shared helpers of the metrics: field access with clear errors, grouped means."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from vlmkit.errors import DataError


def field(pred: Mapping[str, Any], key: str, metric: str) -> Any:
    """``pred[key]``, or a DataError naming the sample, the metric and the keys it does have."""
    if key not in pred:
        raise DataError(f"{metric}: prediction {pred.get('id', '?')!r} has no field '{key}' "
                        f"(fields: {sorted(pred)}); the task must write it into every prediction record")
    return pred[key]


def require_nonempty(predictions: list, metric: str) -> None:
    if not predictions:
        raise DataError(f"{metric}: no predictions to score")


def mean(values: Iterable[float]) -> float:
    values = list(values)
    if not values:
        raise ValueError("mean of an empty list")
    return sum(values) / len(values)


def grouped(items: Iterable[tuple[str, Any]]) -> dict[str, list]:
    """``[(key, value), ...]`` -> ``{key: [values...]}`` with keys in first-seen order."""
    groups: dict[str, list] = defaultdict(list)
    for key, value in items:
        groups[str(key)].append(value)
    return dict(groups)
