"""Generic event boundary captioning (Kinetics-GEBC, LLMVA-GEBC): three captions per boundary, scored per type.

LLMVA-GEBC asks each boundary three times (subject, status before, status after), one sample each; the
samples' meta name the boundary (``group_key``) and the ``caption_type``.  Before scoring, the three answers
of a boundary are put back together into one record ``{id: boundary, prediction: {type: text}, answer: {type:
reference}}`` for the ``gebc`` metric.  Records without a caption_type (or with ``joint``) already hold a whole GEB+ caption string
("Subject: ... //Status_Before: ... //Status_After: ...") and pass through unchanged.
"""
from __future__ import annotations

from typing import Any, Optional

from vlmkit.errors import DataError
from vlmkit.metrics.base import field
from vlmkit.metrics.gebc import CAPTION_TYPES
from vlmkit.registry import TASKS
from vlmkit.schema import ComponentList, Runtime
from vlmkit.tasks.generation import GenerationTask


def reference_text(record: dict[str, Any]) -> str:
    reference = record.get("references", record.get("answer"))
    if isinstance(reference, list) and len(reference) == 1:
        reference = reference[0]
    if not isinstance(reference, str):
        raise DataError(f"gebc: sample {record.get('id')!r} needs one reference caption in 'answer' or "
                        f"'references', got {reference!r}")
    return reference


@TASKS.register("gebc", aliases=["boundary_captioning"])
class GEBCTask(GenerationTask):
    """Boundary captions grouped per boundary, then ROUGE-L / CIDEr / SPICE per caption type and their average.

    A boundary with a caption type missing from the predictions (a skipped sample) is scored with an empty
    caption for it, as upstream does for missing parts; ``num_missing_captions`` counts them.
    """

    default_primary = "avg/CIDEr"

    def __init__(self, metrics: ComponentList("metrics") = ("gebc",), group_key: str = "boundary_id",
                 max_new_tokens: Optional[int] = None, primary: Optional[str] = None,
                 generation: Runtime[Optional[dict]] = None, output_dir: Runtime[Optional[str]] = None):
        super().__init__(metrics, max_new_tokens, primary, generation, output_dir)
        self.group_key = group_key

    def boundaries(self, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        grouped: dict[str, dict[str, Any]] = {}
        passthrough = []
        for record in records:
            kind = record.get("caption_type")
            if kind is None or kind == "joint":  # one whole GEB+ caption string per boundary
                passthrough.append(record)
                continue
            if kind not in CAPTION_TYPES:
                raise DataError(f"gebc: sample {record.get('id')!r} has caption_type {kind!r}; accepted: "
                                f"{list(CAPTION_TYPES)}")
            boundary = str(field(record, self.group_key, "gebc"))
            entry = grouped.setdefault(boundary, {"id": boundary, "prediction": {}, "answer": {}})
            entry["prediction"][kind] = str(record["prediction"])
            entry["answer"][kind] = reference_text(record)
        missing = 0
        for entry in grouped.values():
            absent = [kind for kind in CAPTION_TYPES if kind not in entry["answer"]]
            missing += len(absent)
            for kind in absent:  # neither prediction nor reference: the sample never came back
                entry["prediction"][kind] = ""
                entry["answer"][kind] = " "
        return passthrough + list(grouped.values()), missing

    def evaluate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        boundaries, missing = self.boundaries(records)
        result = super().evaluate(boundaries)
        result["num_missing_captions"] = float(missing)
        return result
