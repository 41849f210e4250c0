"""MLVU's generation tasks (G-Avg; reference: benchmark_formats.md 5.3), judged by an LLM (MLVU: gpt-4-turbo at
temperature 0) with vlmkit's prompts (``mlvu_prompts``).

Per reply: the two 1-5 scores of its task (sub_scene: score_accuracy, score_relevance; summary:
score_completeness, score_reliability), read from the last ``{...}`` in the reply that holds both (Python or
JSON), else from the last ``key: number`` of each.  A reply whose scores cannot be read, or lie outside 1..5, is
re-asked (the judge's ``max_retries``); if it still fails it scores 0 + 0 and is counted in
``num_unparseable`` (MLVU's calculate.py also adds 0 for such replies and keeps them in the denominator).
The judge's own ``total_score`` is ignored and the sum recomputed, as calculate.py does.

Results: ``<task>/<score key>`` = the mean of that score over the task's items; ``<task>`` = their sum, the mean
total score on 2..10 (MLVU's SSC and VS numbers); ``g_avg`` = the mean of the two tasks' total scores (not of
the component means), reported only when both tasks are present and named in ``g_avg_of``.
"""
from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from typing import Any, Optional

from vlmkit.errors import DataError
from vlmkit.metrics.base import field, mean, require_nonempty
from vlmkit.metrics.judge_common import build_judge, judge_fields
from vlmkit.metrics.judge_prompts import prompt_version
from vlmkit.metrics.mlvu_prompts import MLVU_GENERATION, SCORE_KEYS
from vlmkit.registry import METRICS
from vlmkit.schema import Component

_SPAN = re.compile(r"\{[^{}]*\}")
SCORE_RANGE = (1.0, 5.0)


def _score(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if SCORE_RANGE[0] <= score <= SCORE_RANGE[1] else None


def parse_scores(text: str, keys: Sequence[str]) -> Optional[tuple[float, ...]]:
    """The scores under ``keys`` in a judge reply, or None when any is missing, not a number or out of 1..5."""
    for span in reversed(_SPAN.findall(text)):  # the dict comes last; reasoning before it may quote keys
        for loader in (ast.literal_eval, json.loads):
            try:
                value = loader(span)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, dict) and all(k in value for k in keys):
                scores = tuple(_score(value[k]) for k in keys)
                return None if None in scores else scores
    # a dict no loader reads ("'total_score': 3 + 4", unquoted keys, prose): the last "key: number" of each key
    found = []
    for key in keys:
        matches = re.findall(rf"""['"]?{re.escape(key)}['"]?\s*[:=]\s*['"]?(-?\d+(?:\.\d+)?)""", text)
        found.append(_score(matches[-1]) if matches else None)
    return None if None in found else tuple(found)


def format_points(points: Any) -> str:
    if isinstance(points, str):
        return points
    return "\n".join(f"{i}. {p}" for i, p in enumerate(points, 1))


@METRICS.register("mlvu_generation", aliases=["mlvu_g_avg"])
class MLVUGeneration:
    """Sub-Scene Captioning and Video Summarization scores and their mean G-Avg, judged by an LLM."""

    def __init__(self, judge: Component("metrics"), type_key: str = "task_type", question_key: str = "question",
                 answer_key: str = "answer", scoring_points_key: str = "scoring_points"):
        self.judge = build_judge(judge, "mlvu_generation")
        self.keys = dict(type=type_key, question=question_key, answer=answer_key, points=scoring_points_key)
        self.version = prompt_version(MLVU_GENERATION)

    def _task(self, pred: dict[str, Any]) -> str:
        task = str(field(pred, self.keys["type"], "mlvu_generation"))
        if task not in SCORE_KEYS:
            raise DataError(f"mlvu_generation: prediction {pred.get('id')!r} has {self.keys['type']}={task!r}; "
                            f"accepted: {sorted(SCORE_KEYS)}")
        return task

    def _request(self, task: str, pred: dict[str, Any]) -> tuple[str, str]:
        fields = dict(question=field(pred, self.keys["question"], "mlvu_generation"),
                      answer=field(pred, self.keys["answer"], "mlvu_generation"),
                      pred=field(pred, "prediction", "mlvu_generation"))
        if task == "sub_scene":
            fields["scoring_points"] = format_points(field(pred, self.keys["points"], "mlvu_generation"))
        return MLVU_GENERATION[task].render(**fields)

    def _accept(self, task: str):
        return lambda text: parse_scores(text, SCORE_KEYS[task])

    def score_sample(self, pred: dict[str, Any]) -> dict[str, Any]:
        task = self._task(pred)
        reply = self.judge.ask(*self._request(task, pred), accept=self._accept(task))
        scores = reply.parsed or (0.0,) * len(SCORE_KEYS[task])
        return {"id": pred.get("id"), "task_type": task, "parsed": reply.parsed is not None,
                "scores": dict(zip(SCORE_KEYS[task], scores)), "total_score": sum(scores)}

    def compute(self, predictions: list[dict[str, Any]]) -> dict[str, Any]:
        require_nonempty(predictions, "mlvu_generation")
        before = self.judge.requests_sent
        by_task: dict[str, list[dict[str, Any]]] = {}
        for pred in predictions:
            by_task.setdefault(self._task(pred), []).append(pred)
        result: dict[str, Any] = {}
        unparseable = cached = 0
        for task in (t for t in SCORE_KEYS if t in by_task):
            preds = by_task[task]
            replies = self.judge.ask_many([self._request(task, p) for p in preds], accept=self._accept(task))
            scores = [r.parsed or (0.0, 0.0) for r in replies]  # unreadable after retries: 0 + 0, still counted
            for k, key in enumerate(SCORE_KEYS[task]):
                result[f"{task}/{key}"] = mean(s[k] for s in scores)
            result[task] = sum(result[f"{task}/{key}"] for key in SCORE_KEYS[task])
            result[f"num_{task}"] = float(len(preds))
            result[f"num_unparseable/{task}"] = float(sum(r.parsed is None for r in replies))
            unparseable += sum(r.parsed is None for r in replies)
            cached += sum(r.cached for r in replies)
        if all(task in result for task in SCORE_KEYS):
            # G-Avg: the two tasks' mean total scores (2..10 each) averaged, as MLVU reports SSC, VS and G-Avg
            result["g_avg"] = mean(result[task] for task in SCORE_KEYS)
            result["g_avg_of"] = ",".join(SCORE_KEYS) + " (mean total score per task)"
        result["num_unparseable"] = float(unparseable)
        result["num_cached"] = float(cached)
        result.update(judge_fields(self.judge, self.version, before))
        return result
