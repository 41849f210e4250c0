"""Open-ended QA judged yes/no + score 0..5 by an LLM (Video-ChatGPT protocol: MSVD, MSRVTT, TGIF, ActivityNet).

Per sample: score = int(reply score) (4.8 -> 4); yes = 'yes' in pred, no = not yes and 'no' in pred.
Accuracy = yes / (yes + no) (replies with neither drop out); average score = sum of scores / judged samples.
Unparseable replies (after the judge's retries) are counted and either left out (``exclude``, the original
scripts re-ask until they parse) or scored as no/0 (``no_zero``, lmms-eval).  Samples the judge gave no reply for
(every retry hit a transport error) are counted as ``num_failed``, logged with their ids and never scored, under
``on_failure: record``; ``raise`` stops the evaluation instead.  Either way they are not cached: a rerun asks again.
"""
from __future__ import annotations

import logging
from typing import Any, Literal, Optional

from vlmkit.metrics.base import field, require_nonempty
from vlmkit.metrics.judge_common import build_judge, judge_fields
from vlmkit.metrics.judge_parse import judge_score, parse_judge_dict
from vlmkit.metrics.judge_prompts import VIDEO_CHATGPT_QA, prompt_version
from vlmkit.registry import METRICS
from vlmkit.schema import Component

_log = logging.getLogger(__name__)


def parse_qa_reply(text: str) -> Optional[dict[str, Any]]:
    reply = parse_judge_dict(text, ("pred", "score"))
    if reply is None:
        return None
    score = judge_score(reply["score"])
    verdict = str(reply["pred"]).lower()
    if score is None:
        return None
    yes = "yes" in verdict
    return {"yes": yes, "no": (not yes) and "no" in verdict, "score": score}


@METRICS.register("judged_qa", aliases=["video_chatgpt_qa"])
class JudgedQA:
    """Accuracy and average score of open-ended answers as judged by an LLM (Video-ChatGPT protocol)."""

    def __init__(self, judge: Component("metrics"), unparseable: Literal["exclude", "no_zero"] = "exclude",
                 question_key: str = "question", answer_key: str = "answer", percent: bool = True,
                 on_failure: Literal["record", "raise"] = "record"):
        """on_failure: a sample the judge never answered is counted and left out (record) or ends the run (raise)."""
        self.judge = build_judge(judge, "judged_qa")
        self.prompt = VIDEO_CHATGPT_QA["qa"]
        self.version = prompt_version(VIDEO_CHATGPT_QA)
        self.unparseable = unparseable
        self.question_key = question_key
        self.answer_key = answer_key
        self.scale = 100.0 if percent else 1.0
        self.on_failure = on_failure

    def _request(self, pred: dict[str, Any]) -> tuple[str, str]:
        return self.prompt.render(question=field(pred, self.question_key, "judged_qa"),
                                  answer=field(pred, self.answer_key, "judged_qa"),
                                  pred=field(pred, "prediction", "judged_qa"))

    def _verdict(self, pred: dict[str, Any], reply) -> dict[str, Any]:
        return {"id": pred.get("id"), "reply": reply.text, "parsed": reply.parsed is not None,
                "error": reply.error, **(reply.parsed or {"yes": False, "no": False, "score": None})}

    def score_sample(self, pred: dict[str, Any]) -> dict[str, Any]:
        [reply] = self.judge.ask_many([self._request(pred)], accept=parse_qa_reply, on_failure=self.on_failure)
        return self._verdict(pred, reply)

    def compute(self, predictions: list[dict[str, Any]]) -> dict[str, Any]:
        require_nonempty(predictions, "judged_qa")
        before = self.judge.requests_sent
        replies = self.judge.ask_many([self._request(p) for p in predictions], accept=parse_qa_reply,
                                      on_failure=self.on_failure)
        verdicts = [self._verdict(p, r) for p, r in zip(predictions, replies)]
        answered = [v for v in verdicts if v["error"] is None]
        failed = [v for v in verdicts if v["error"] is not None]
        if failed:
            _log.warning("judged_qa: the judge gave no reply for %d of %d samples (ids %s); they are left out of "
                         "the scores and asked again on the next run. First error: %s", len(failed),
                         len(verdicts), [v["id"] for v in failed][:20], failed[0]["error"])
        judged = [v for v in answered if v["parsed"]]
        if self.unparseable == "no_zero":
            judged = [v if v["parsed"] else {**v, "no": True, "score": 0} for v in answered]
        yes = sum(v["yes"] for v in judged)
        no = sum(v["no"] for v in judged)
        result: dict[str, Any] = {
            "accuracy": self.scale * yes / (yes + no) if yes + no else float("nan"),
            "score": sum(v["score"] for v in judged) / len(judged) if judged else float("nan"),
            "num_samples": float(len(predictions)), "num_judged": float(len(judged)),
            "num_yes": float(yes), "num_no": float(no),
            "num_unparseable": float(sum(not v["parsed"] for v in answered)),
            "num_failed": float(len(failed)),
            "num_cached": float(sum(r.cached for r in replies)),
        }
        result.update(judge_fields(self.judge, self.version, before))
        return result
