"""Building a judge from a metric's config and describing it in the results."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vlmkit.metrics.judge_base import ChatJudge


def build_judge(judge: Any, metric: str) -> ChatJudge:
    """A judge config (``{name: openai_judge, model: ...}``) or an already built judge."""
    if isinstance(judge, ChatJudge):
        return judge
    if isinstance(judge, Mapping):
        from vlmkit.registry import METRICS

        built = METRICS.build(judge, path=f"{metric}.judge")
        if not isinstance(built, ChatJudge):
            raise TypeError(f"{metric}.judge must name a judge (openai_judge, transformers_judge), "
                            f"got {type(built).__name__}")
        return built
    raise TypeError(f"{metric}.judge must be a judge config mapping, got {judge!r}")


def judge_fields(judge: ChatJudge, prompt_version: str, requests_before: int) -> dict[str, Any]:
    """Identity of the judge as flat result entries (strings), plus how many requests this compute sent."""
    identity = judge.identity()
    return {"judge.kind": identity["kind"], "judge.model": identity["model"], "judge.endpoint": identity["endpoint"],
            "judge.prompt_version": prompt_version, "judge.requests": float(judge.requests_sent - requests_before)}
