"""VCGBench / VCGBench-Diverse: five judged dimensions, each the mean of int(score) 0..5 over its items.

Routing by the record's type field: correctness (CI), detail (DO) and context (CU) over generic items
(VCGBench "generic"; Diverse "summary", "spatial", "reasoning"), temporal (TU) over "temporal", consistency
(CO) over "consistency" items, which carry a second question and prediction (``question_2``,
``prediction_2``: the ``vcgbench`` dataset and ``open_qa`` task write them).  ``average`` is the unweighted mean
of the five dimension scores CI, DO, CU, TU, CO (the papers' "mean"), reported only when all five are present
and named in ``average_of``; ``average_pooled`` is the mean of every judged score, where generic items count
three times (PLLaVA's ``save_results`` "Avg_Score": PLLaVA-34B's published VCG average 3.48 is what its five
scores give pooled over 1,996 generic, 499 temporal and 499 consistency items; their plain mean is 3.32).
Diverse also reports, per generic type, the mean of its pooled CI and DO scores.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from vlmkit.errors import DataError
from vlmkit.metrics.base import field, mean, require_nonempty
from vlmkit.metrics.judge_common import build_judge, judge_fields
from vlmkit.metrics.judge_parse import judge_score, parse_judge_dict
from vlmkit.metrics.judge_prompts import VCGBENCH, prompt_version
from vlmkit.registry import METRICS
from vlmkit.schema import Component

DIMENSIONS = ("correctness", "detail", "context", "temporal", "consistency")
ROUTES = {
    "vcgbench": {"generic": ("correctness", "detail", "context"), "temporal": ("temporal",),
                 "consistency": ("consistency",)},
    "vcgbench_diverse": {"summary": ("correctness", "detail", "context"),
                         "spatial": ("correctness", "detail", "context"),
                         "reasoning": ("correctness", "detail", "context"),
                         "temporal": ("temporal",), "consistency": ("consistency",)},
}


def parse_score_reply(text: str) -> Optional[int]:
    reply = parse_judge_dict(text, ("score",))
    return None if reply is None else judge_score(reply["score"])


@METRICS.register("vcgbench")
class VCGBench:
    """Video-ChatGPT's five generative-performance dimensions, judged by an LLM."""

    def __init__(self, judge: Component("metrics"), routing: Literal["vcgbench", "vcgbench_diverse"] = "vcgbench",
                 type_key: str = "task_type", question_key: str = "question", answer_key: str = "answer",
                 question2_key: str = "question_2", prediction2_key: str = "prediction_2",
                 unparseable: Literal["exclude", "zero"] = "exclude"):
        """unparseable: leave such replies out of the mean (original re-asks), or score them 0 (lmms-eval)."""
        self.judge = build_judge(judge, "vcgbench")
        self.routes = ROUTES[routing]
        self.routing = routing
        self.keys = dict(type=type_key, question=question_key, answer=answer_key, question2=question2_key,
                         prediction2=prediction2_key)
        self.unparseable = unparseable
        self.version = prompt_version(VCGBENCH)

    def _requests(self, pred: dict[str, Any]) -> list[tuple[str, tuple[str, str]]]:
        kind = str(field(pred, self.keys["type"], "vcgbench"))
        if kind not in self.routes:
            raise DataError(f"vcgbench: prediction {pred.get('id')!r} has {self.keys['type']}={kind!r}; "
                            f"{self.routing} accepts {sorted(self.routes)}")
        fields = dict(question=field(pred, self.keys["question"], "vcgbench"),
                      answer=field(pred, self.keys["answer"], "vcgbench"),
                      pred=field(pred, "prediction", "vcgbench"))
        if kind == "consistency":
            fields.update(question2=field(pred, self.keys["question2"], "vcgbench"),
                          pred2=field(pred, self.keys["prediction2"], "vcgbench"))
        return [(dim, VCGBENCH[dim].render(**fields)) for dim in self.routes[kind]]

    def score_sample(self, pred: dict[str, Any]) -> dict[str, Any]:
        scores = {dim: self.judge.ask(*request, accept=parse_score_reply).parsed
                  for dim, request in self._requests(pred)}
        return {"id": pred.get("id"), "scores": scores}

    def compute(self, predictions: list[dict[str, Any]]) -> dict[str, Any]:
        require_nonempty(predictions, "vcgbench")
        before = self.judge.requests_sent
        jobs = [(pred, dim, request) for pred in predictions for dim, request in self._requests(pred)]
        replies = self.judge.ask_many([request for _, _, request in jobs], accept=parse_score_reply)
        per_dim: dict[str, list[int]] = {dim: [] for dim in DIMENSIONS}
        per_type: dict[str, list[int]] = {}
        unparseable = 0
        for (pred, dim, _), reply in zip(jobs, replies):
            score = reply.parsed
            if score is None:
                unparseable += 1
                if self.unparseable == "exclude":
                    continue
                score = 0
            per_dim[dim].append(score)
            if dim in ("correctness", "detail"):
                per_type.setdefault(str(pred[self.keys["type"]]), []).append(score)
        result: dict[str, Any] = {dim: mean(v) for dim, v in per_dim.items() if v}
        result.update({f"num_{dim}": float(len(v)) for dim, v in per_dim.items()})
        if all(dim in result for dim in DIMENSIONS):
            result["average"] = mean(result[dim] for dim in DIMENSIONS)
            result["average_of"] = "CI,DO,CU,TU,CO (" + ",".join(DIMENSIONS) + ")"
        scored = [score for values in per_dim.values() for score in values]
        if scored:
            result["average_pooled"] = mean(scored)
        if self.routing == "vcgbench_diverse":
            result.update({f"type/{kind}": mean(v) for kind, v in sorted(per_type.items())})
        result["num_unparseable"] = float(unparseable)
        result["num_cached"] = float(sum(r.cached for r in replies))
        result.update(judge_fields(self.judge, self.version, before))
        return result
