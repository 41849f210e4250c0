"""The normalised reference appears in the normalised prediction, on word boundaries ("red" not in "tired")."""
from __future__ import annotations

from typing import Any

from vlmkit.metrics.base import require_nonempty
from vlmkit.metrics.text_normalize import any_reference
from vlmkit.registry import METRICS


def _contains(said: str, ref: str) -> bool:
    return bool(ref) and f" {ref} " in f" {said} "


@METRICS.register("contains")
class Contains:
    """Share of predictions containing one of their references after normalisation."""

    def __init__(self, lowercase: bool = True, strip_punctuation: bool = True, strip_articles: bool = True,
                 percent: bool = True):
        self.options = (lowercase, strip_punctuation, strip_articles)
        self.scale = 100.0 if percent else 1.0

    def score_sample(self, pred: dict[str, Any]) -> dict[str, Any]:
        return {"id": pred.get("id"), "correct": any_reference(pred, "contains", _contains, self.options)}

    def compute(self, predictions: list[dict[str, Any]]) -> dict[str, float]:
        require_nonempty(predictions, "contains")
        hits = [self.score_sample(p)["correct"] for p in predictions]
        return {"contains": self.scale * sum(hits) / len(hits), "num_samples": float(len(hits))}
