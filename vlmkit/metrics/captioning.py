"""COCO caption metrics (pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr, SPICE) over PTB-tokenised text.

SPICE is computed only when its CoreNLP jars are present; otherwise the result says so under
``SPICE_not_computed`` (a string with the reason) instead of a number.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from vlmkit.errors import DataError
from vlmkit.metrics.base import field, require_nonempty
from vlmkit.metrics.coco_scorers import ptb_tokenize, score_corpus
from vlmkit.metrics.text_normalize import references_of
from vlmkit.registry import METRICS

Scorer = Literal["BLEU", "METEOR", "ROUGE_L", "CIDEr", "SPICE"]


@METRICS.register("caption_coco", aliases=["captioning"])
class CaptionMetrics:
    """Corpus-level caption scores of predictions against their references."""

    def __init__(self, scorers: Optional[list[Scorer]] = None, percent: bool = False):
        """scorers: which to compute (default all five); percent: multiply by 100 (papers' convention)."""
        self.scorers = list(scorers) if scorers is not None else ["BLEU", "METEOR", "ROUGE_L", "CIDEr", "SPICE"]
        if not self.scorers:
            raise DataError("caption_coco: scorers is empty; choose from BLEU, METEOR, ROUGE_L, CIDEr, SPICE")
        self.scale = 100.0 if percent else 1.0

    def compute(self, predictions: list[dict[str, Any]]) -> dict[str, Any]:
        require_nonempty(predictions, "caption_coco")
        ids = [field(p, "id", "caption_coco") for p in predictions]
        if len(set(ids)) != len(ids):
            raise DataError("caption_coco: prediction ids are not unique; each caption needs its own id")
        gts = {i: references_of(p, "caption_coco") for i, p in zip(ids, predictions)}
        res = {i: [str(field(p, "prediction", "caption_coco"))] for i, p in zip(ids, predictions)}
        tokens = ptb_tokenize({"gts": gts, "res": res})
        scores, skipped = score_corpus(tokens["gts"], tokens["res"], self.scorers)
        result: dict[str, Any] = {k: self.scale * v for k, v in scores.items()}
        result.update({f"{k}_not_computed": reason for k, reason in skipped.items()})
        result["num_samples"] = float(len(predictions))
        return result
