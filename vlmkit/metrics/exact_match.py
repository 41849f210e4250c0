"""Exact match of the normalised prediction against any normalised reference."""
from __future__ import annotations

from typing import Any

from vlmkit.metrics.base import require_nonempty
from vlmkit.metrics.text_normalize import any_reference
from vlmkit.registry import METRICS


@METRICS.register("exact_match")
class ExactMatch:
    """Share of predictions equal to one of their references after normalisation."""

    def __init__(self, lowercase: bool = True, strip_punctuation: bool = True, strip_articles: bool = True,
                 percent: bool = True):
        self.options = (lowercase, strip_punctuation, strip_articles)
        self.scale = 100.0 if percent else 1.0

    def score_sample(self, pred: dict[str, Any]) -> dict[str, Any]:
        return {"id": pred.get("id"),
                "correct": any_reference(pred, "exact_match", lambda said, ref: said == ref, self.options)}

    def compute(self, predictions: list[dict[str, Any]]) -> dict[str, float]:
        require_nonempty(predictions, "exact_match")
        hits = [self.score_sample(p)["correct"] for p in predictions]
        return {"exact_match": self.scale * sum(hits) / len(hits), "num_samples": float(len(hits))}
