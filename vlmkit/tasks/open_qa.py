"""Open-ended video QA (MSVD / MSRVTT / ActivityNet / TGIF, VCGBench): generate an answer, score it."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch

from vlmkit.registry import TASKS
from vlmkit.schema import ComponentList, Runtime
from vlmkit.tasks.generation import GenerationTask

PREDICTION_2 = "prediction_2"  # the vcgbench metric's default prediction2_key


def second_question_batch(batch: Mapping[str, Any], rows: Sequence[int], batch_keys: Sequence[str]) -> dict:
    """The rows of ``batch`` that carry a second question, with that question as their prompt (same pixels).

    The rows' other visual-side entries (``batch_keys``) are reused as they are: a question-conditioned frame
    selector (VideoTGB's ``question_ids``) still sees the first question when answering the second. An entry
    with a second-question version (``instruction_ids_2``: the Q-Former's instruction) is taken from that.
    """
    mask = batch["attention_mask_2"][rows]
    start = int(mask.any(0).nonzero()[0])  # drop the left-padding columns no selected row needs
    picked: dict[str, Any] = {"input_ids": batch["input_ids_2"][rows][:, start:], "attention_mask": mask[:, start:],
                              "pixel_values": [p[rows] for p in batch["pixel_values"]]}
    for key in batch_keys:
        if key in batch:
            value = batch.get(f"{key}_2", batch[key])
            picked[key] = value[rows] if isinstance(value, torch.Tensor) else [value[r] for r in rows]
    return picked


@TASKS.register("open_qa")
class OpenQATask(GenerationTask):
    """Free-form answers scored by judge-free metrics (exact_match, contains) or a judge (judged_qa, vcgbench).

    Records carry the sample's meta ("question", "answer" ...) plus "prediction", as the metrics expect.
    A batch with ``input_ids_2`` (VCGBench consistency items, see the ``vcgbench`` dataset) is answered twice:
    the rows flagged in ``has_question_2`` also get "prediction_2", the answer to their second question.
    """

    def __init__(self, metrics: ComponentList("metrics") = ("exact_match", "contains"),
                 max_new_tokens: Optional[int] = None, primary: Optional[str] = None,
                 generation: Runtime[Optional[dict]] = None, output_dir: Runtime[Optional[str]] = None):
        super().__init__(metrics, max_new_tokens, primary, generation, output_dir)

    def valid_step(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        records = super().valid_step(model, batch)
        if "input_ids_2" not in batch:
            return records
        rows = batch["has_question_2"].nonzero().flatten().tolist()
        if rows:
            second = second_question_batch(batch, rows, model.batch_keys)
            for row, text in zip(rows, self.generate(model, second)):
                records[row][PREDICTION_2] = text
        return records
