"""Shared machinery of the evaluation tasks: generate answers for a batch, score records with configured metrics.

A prediction record is the sample's ``meta`` dict with ``prediction`` (the decoded answer) added; records are
plain JSON values so ranks can exchange them and the evaluator can append them to JSON-lines files.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import torch

from vlmkit.errors import DataError
from vlmkit.protocols import GENERATING_MEMBERS, require_members
from vlmkit.registry import METRICS, Registry
from vlmkit.tasks.base import Task


def json_plain(value: Any, where: str) -> Any:
    """``value`` as JSON-ready Python (tensors and numpy values converted); anything else raises, naming ``where``."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): json_plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise DataError(f"{where}: a {type(value).__name__} cannot be written to a predictions file; a dataset's "
                    f"meta must hold strings, numbers, lists and dicts")


def batch_meta(batch: Mapping[str, Any], rows: int) -> list[dict[str, Any]]:
    """The batch's per-sample meta dicts, checked: one per row, each with an 'id'."""
    meta = batch.get("meta")
    if not isinstance(meta, Sequence) or len(meta) != rows:
        raise DataError(f"an evaluation batch needs 'meta': one dict per sample ({rows} rows), got "
                        f"{type(meta).__name__ if meta is None else len(meta)}")
    for i, m in enumerate(meta):
        if not isinstance(m, Mapping) or "id" not in m:
            raise DataError(f"meta[{i}] of an evaluation batch has no 'id' (got {m!r}); ids name predictions "
                            f"and let an interrupted evaluation resume")
    return [json_plain(dict(m), f"meta of sample {m['id']!r}") for m in meta]


def metric_name(cfg: Any) -> str:
    return str(Registry.name_of(cfg, "metrics"))


def generate_batch(model: torch.nn.Module, batch: Mapping[str, Any], generation: Mapping[str, Any]) -> list[str]:
    """The model's answers for a collated batch (evaluation and ``vlmkit.load`` alike). Entries the model reads
    besides pixels (precomputed features, GEBC's reference_points) go along."""
    require_members(model, GENERATING_MEMBERS, "evaluation", "a model that generates (vlmkit.protocols."
                                                             "GeneratingModel)")
    inputs = {key: batch[key] for key in model.batch_keys if key in batch}
    return model.generate(batch["input_ids"], batch["attention_mask"], batch["pixel_values"], **inputs,
                          **generation)


class GenerationTask(Task):
    """Generate an answer per sample, then score all records with ``metrics`` (METRICS configs).

    Metric results are merged into one flat dict; a key that an earlier metric already reported with a different
    value is stored as ``<metric>/<key>``. ``primary`` names the headline number used in the overall summary.
    """

    default_primary: Optional[str] = None

    def __init__(self, metrics: Sequence[Any], max_new_tokens: Optional[int] = None, primary: Optional[str] = None,
                 generation: Optional[dict] = None, output_dir: Optional[str] = None):
        if not metrics:
            raise DataError(f"{type(self).__name__}: metrics is empty; name at least one METRICS component")
        self.metric_names = [metric_name(cfg) for cfg in metrics]
        self.metrics = [METRICS.build(cfg, path=f"task.metrics[{i}]") for i, cfg in enumerate(metrics)]
        self.generation = dict(generation or {})
        if max_new_tokens is not None:
            self.generation["max_new_tokens"] = max_new_tokens
        self.primary = primary or self.default_primary
        self.output_dir = Path(output_dir) if output_dir else None

    # ------------------------------------------------------------------ predictions
    def generate(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> list[str]:
        return generate_batch(model, batch, self.generation)

    def valid_step(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        meta = batch_meta(batch, batch["input_ids"].shape[0])
        texts = self.generate(model, batch)
        return [{**m, "prediction": text} for m, text in zip(meta, texts)]

    # ------------------------------------------------------------------ metrics
    def evaluate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, metric in zip(self.metric_names, self.metrics):
            for key, value in metric.compute(records).items():
                same = key in result and (result[key] == value or _both_nan(result[key], value))
                result[key if key not in result or same else f"{name}/{key}"] = value
        return result

    def headline(self, metrics: Mapping[str, Any]) -> Optional[tuple[str, float]]:
        """(name, value) of the primary metric; the first numeric one when ``primary`` is unset."""
        if self.primary is not None:
            if self.primary not in metrics:
                raise DataError(f"{type(self).__name__}: primary metric '{self.primary}' is not among the "
                                f"results {sorted(metrics)}")
            return self.primary, float(metrics[self.primary])
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not key.startswith("num_"):
                return key, float(value)
        return None


def _both_nan(a: Any, b: Any) -> bool:
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
