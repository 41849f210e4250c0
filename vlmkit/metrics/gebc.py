"""Kinetics-GEBC scoring (GEB+ ``evaluation_utils``): each caption type scored as its own corpus, then averaged.

A prediction record holds the boundary id as ``id``; its ``prediction`` and its reference (``references`` or
``answer``) are either a dict {subject, status_before, status_after} or a GEB+ caption string
"Subject: ... //Status_Before: ... //Status_After: ..." split on ``split_pred`` / ``split_ref`` keeping the
text after the last ':' of each part (missing parts become ' ', as upstream).  Per type: ROUGE-L, CIDEr and
SPICE (when it can run), scaled by 100; ``avg/<scorer>`` is the mean over the three types, computed here
rather than copied from upstream's log line (which adds the subject CIDEr three times).
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from vlmkit.errors import DataError
from vlmkit.metrics.base import field, require_nonempty
from vlmkit.metrics.coco_scorers import ptb_tokenize, score_corpus
from vlmkit.registry import METRICS

CAPTION_TYPES = ("subject", "status_before", "status_after")


def split_caption(caption: Union[str, dict, list], separator: str) -> dict[str, str]:
    """The three captions of one boundary from a dict or a GEB+ caption string."""
    if isinstance(caption, dict):
        missing = [t for t in CAPTION_TYPES if t not in caption]
        if missing:
            raise DataError(f"gebc: caption dict lacks {missing}; it needs {list(CAPTION_TYPES)}")
        return {t: str(caption[t]) for t in CAPTION_TYPES}
    if isinstance(caption, list):
        if len(caption) != 1:
            raise DataError(f"gebc: expected one reference caption string per boundary, got {len(caption)}")
        caption = caption[0]
    parts = [part.split(":")[-1].strip() for part in str(caption).split(separator)]
    parts += [" "] * (len(CAPTION_TYPES) - len(parts))
    return dict(zip(CAPTION_TYPES, parts[:len(CAPTION_TYPES)]))


@METRICS.register("gebc")
class GEBCMetrics:
    """Per-caption-type ROUGE-L / CIDEr / SPICE and their three-type averages for event boundary captions."""

    def __init__(self, scorers: Optional[list[Literal["BLEU", "METEOR", "ROUGE_L", "CIDEr", "SPICE"]]] = None,
                 split_pred: str = "//", split_ref: str = "//", percent: bool = True):
        """split_pred: "/ /" reproduces GEB+'s split of its BERT decoder output; scorers default to the
        protocol's ROUGE_L, CIDEr, SPICE."""
        self.scorers = list(scorers) if scorers is not None else ["ROUGE_L", "CIDEr", "SPICE"]
        self.split_pred = split_pred
        self.split_ref = split_ref
        self.scale = 100.0 if percent else 1.0

    def compute(self, predictions: list[dict[str, Any]]) -> dict[str, Any]:
        require_nonempty(predictions, "gebc")
        corpora: dict[str, dict] = {}
        for pred in predictions:
            boundary = field(pred, "id", "gebc")
            reference = pred.get("references", pred.get("answer"))
            if reference is None:
                raise DataError(f"gebc: boundary {boundary!r} has neither 'references' nor 'answer'")
            said = split_caption(field(pred, "prediction", "gebc"), self.split_pred)
            truth = split_caption(reference, self.split_ref)
            for kind in CAPTION_TYPES:
                corpora.setdefault(f"gts/{kind}", {})[boundary] = [truth[kind]]
                corpora.setdefault(f"res/{kind}", {})[boundary] = [said[kind]]
        tokens = ptb_tokenize(corpora)
        result: dict[str, Any] = {}
        per_type: dict[str, dict[str, float]] = {}
        for kind in CAPTION_TYPES:
            scores, skipped = score_corpus(tokens[f"gts/{kind}"], tokens[f"res/{kind}"], self.scorers)
            per_type[kind] = scores
            result.update({f"{kind}/{k}": self.scale * v for k, v in scores.items()})
            result.update({f"{k}_not_computed": reason for k, reason in skipped.items()})
        for name in per_type["subject"]:
            result[f"avg/{name}"] = sum(result[f"{kind}/{name}"] for kind in CAPTION_TYPES) / len(CAPTION_TYPES)
        result["num_boundaries"] = float(len(predictions))
        return result
