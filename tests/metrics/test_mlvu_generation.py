"""MLVU generation scoring: robust reply parsing, 0 + 0 for unreadable replies (counted), per-task totals and
G-Avg, all through a real local chat server with the judge's retries and cache."""
from __future__ import annotations

import pytest

from tests.metrics.judge_server import FakeChatServer
from vlmkit.errors import DataError
from vlmkit.metrics.judge_prompts import prompt_version
from vlmkit.metrics.mlvu_generation import parse_scores
from vlmkit.metrics.mlvu_prompts import MLVU_GENERATION
from vlmkit.registry import METRICS

ACC = ("score_accuracy", "score_relevance")


@pytest.mark.parametrize("text, expected", [
    ("{'score_accuracy': 3, 'score_relevance': 4, 'total_score': 7}", (3.0, 4.0)),
    # reasoning that quotes the keys, then the dict, whose total is an expression literal_eval refuses
    (("Point 1 is met (5), point 2 is partly met (3), so score_accuracy: 4. Relevance is high.\n"
      "{'score_accuracy': 4, 'score_relevance': 5, 'total_score': 4 + 5}"), (4.0, 5.0)),
    ('```json\n{"score_accuracy": 3.67, "score_relevance": "4", "total_score": 7.67}\n```', (3.67, 4.0)),
    (("An example: {'score_accuracy': 1, 'score_relevance': 1}. My verdict: "
      "{'score_accuracy': 5, 'score_relevance': 2, 'total_score': 7}"), (5.0, 2.0)),  # the last dict wins
    ("score_accuracy = 2, score_relevance = 3", (2.0, 3.0)),
    ("{'score_accuracy': 7, 'score_relevance': 3, 'total_score': 10}", None),      # out of 1..5
    ("{'score_accuracy': 'high', 'score_relevance': 3}", None),                      # not a number
    ("{'score_accuracy': 4, 'total_score': 4}", None),                               # a key missing
    ("I cannot grade this.", None),
    ("", None),
])
def test_parse_scores(text, expected):
    assert parse_scores(text, ACC) == expected


def reply_for(messages):
    """Scripted judge: the score depends on the prediction it is shown."""
    user = messages[-1]["content"]
    pred = user.split("Respondent's answer: " if "Respondent's answer" in user else "Respondent's summary: ")[1]
    pred = pred.split("\n")[0]
    if "sub-scene" in messages[0]["content"]:
        return {"good": "Points met. {'score_accuracy': 5, 'score_relevance': 4, 'total_score': 9}",
                "half": "{'score_accuracy': 3, 'score_relevance': 2, 'total_score': 5}",
                "junk": "no idea"}[pred]
    return {"good": '{"score_completeness": 4, "score_reliability": 4, "total_score": 8}',
            "half": "{'score_completeness': 2, 'score_reliability': 3, 'total_score': 5}",
            "junk": "{'score_completeness': 9, 'score_reliability': 3}"}[pred]


def preds(*rows):
    out = []
    for i, (task, pred) in enumerate(rows):
        record = {"id": f"{task}/{i}", "task_type": task, "question": "Describe the scene.", "answer": "ref",
                  "prediction": pred}
        if task == "sub_scene":
            record["scoring_points"] = ["a red square", "it moves left"]
        out.append(record)
    return out


def metric(server, cache, **judge):
    return METRICS.build({"name": "mlvu_generation", "judge": {
        "name": "openai_judge", "model": "judge-4", "base_url": server.base_url, "cache_dir": str(cache),
        "backoff_s": 0.001, "max_backoff_s": 0.01, "concurrency": 1, "max_retries": 1, **judge}})


def test_task_scores_and_g_avg(tmp_path):
    records = preds(("sub_scene", "good"), ("sub_scene", "half"), ("sub_scene", "junk"),
                    ("summary", "good"), ("summary", "junk"))
    with FakeChatServer(reply_for) as server:
        out = metric(server, tmp_path).compute(records)
        assert len(server.requests) == 5 + 2  # the two unreadable replies were asked twice (max_retries 1)
        user = server.requests[0]["body"]["messages"][1]["content"]
        assert "Scoring points:\n1. a red square\n2. it moves left" in user
        again = metric(server, tmp_path).compute(records)
        # the parsed replies come from the cache; the unreadable ones are asked again (never cached by default)
        assert len(server.requests) == 7 + 4 and again["num_cached"] == 3
    # sub_scene: accuracy (5 + 3 + 0) / 3, relevance (4 + 2 + 0) / 3 -> total 14 / 3
    assert out["sub_scene/score_accuracy"] == pytest.approx(8 / 3)
    assert out["sub_scene/score_relevance"] == pytest.approx(2.0)
    assert out["sub_scene"] == pytest.approx(14 / 3)
    # summary: (4 + 0) / 2 + (4 + 0) / 2 = 4 (the out-of-range reply scores 0 + 0)
    assert out["summary"] == pytest.approx(4.0) and out["summary/score_reliability"] == pytest.approx(2.0)
    assert out["g_avg"] == pytest.approx((14 / 3 + 4.0) / 2)
    assert out["g_avg_of"].startswith("sub_scene,summary")
    assert out["num_unparseable"] == 2 and out["num_unparseable/sub_scene"] == 1 and out["num_summary"] == 2
    assert out["judge.prompt_version"] == prompt_version(MLVU_GENERATION) and out["judge.model"] == "judge-4"
    assert again["g_avg"] == out["g_avg"] and again["judge.requests"] == 4


def test_one_task_reports_no_g_avg_and_bad_records_fail_clearly(tmp_path):
    with FakeChatServer(reply_for) as server:
        out = metric(server, tmp_path).compute(preds(("summary", "good")))
        assert out["summary"] == 8.0 and "g_avg" not in out and "sub_scene" not in out
        with pytest.raises(DataError, match="task_type='plotQA'; accepted"):
            metric(server, tmp_path).compute([{**preds(("summary", "good"))[0], "task_type": "plotQA"}])
        with pytest.raises(DataError, match="no field 'scoring_points'"):
            metric(server, tmp_path).compute([{k: v for k, v in preds(("sub_scene", "good"))[0].items()
                                               if k != "scoring_points"}])
        sample = metric(server, tmp_path).score_sample(preds(("sub_scene", "half"))[0])
    assert sample["scores"] == {"score_accuracy": 3.0, "score_relevance": 2.0} and sample["total_score"] == 5.0
