"""VCGBench's consistency dimension and the averages: both predictions reach the judge, unparseable replies
score 0 under ``unparseable: zero``, 'average' is the plain mean of CI, DO, CU, TU, CO, 'average_pooled' the
mean of every judged score."""
from __future__ import annotations

import pytest

from tests.metrics.judge_server import FakeChatServer
from vlmkit.errors import DataError
from vlmkit.registry import METRICS

SCORES = {"factual accuracy": 4, "detail orientation": 2, "contextual understanding": 3, "temporal": 1}


def reply(messages):
    system, user = messages[0]["content"], messages[1]["content"]
    if "the consistency of generative outputs" in system:
        # the score says which predictions the judge was shown
        if "Predicted Answer to Question 1: red\nPredicted Answer to Question 2: red" in user:
            return "{'score': 5}"
        if "Predicted Answer to Question 2: blue" in user:
            return "{'score': 1.9}"
        return "sorry, no score"
    return next(f"{{'score': {v}}}" for k, v in SCORES.items() if k in system)


def vcg(server, cache, unparseable="zero"):
    return METRICS.build({"name": "vcgbench", "unparseable": unparseable, "judge": {
        "name": "openai_judge", "model": "m", "base_url": server.base_url, "cache_dir": str(cache),
        "max_retries": 0}})


def consistency(i, pred, pred2):
    return {"id": f"c{i}", "task_type": "consistency", "question": "what colour?", "question_2": "which colour?",
            "answer": "red", "prediction": pred, "prediction_2": pred2}


RECORDS = [{"id": "g0", "task_type": "generic", "question": "q", "answer": "a", "prediction": "p"},
           {"id": "t0", "task_type": "temporal", "question": "q", "answer": "a", "prediction": "p"},
           consistency(0, "red", "red"), consistency(1, "red", "blue"), consistency(2, "red", "green")]


def test_consistency_scores_both_answers_and_zeroes_unparseable(tmp_path):
    with FakeChatServer(reply) as server:
        out = vcg(server, tmp_path).compute(RECORDS)
        users = [r["body"]["messages"][1]["content"] for r in server.requests]
    assert sum("Question 1: what colour?\nQuestion 2: which colour?\nCorrect Answer: red" in u for u in users) == 3
    # CO = mean(int(5), int(1.9) = 1, unparseable -> 0)
    assert out["consistency"] == pytest.approx(2.0) and out["num_consistency"] == 3
    assert out["num_unparseable"] == 1
    assert (out["correctness"], out["detail"], out["context"], out["temporal"]) == (4, 2, 3, 1)
    assert out["average"] == pytest.approx((4 + 2 + 3 + 1 + 2) / 5)
    assert out["average_of"].startswith("CI,DO,CU,TU,CO")
    assert out["average_pooled"] == pytest.approx((4 + 2 + 3 + 1 + 5 + 1 + 0) / 7)


def test_average_needs_all_five_dimensions_and_consistency_needs_prediction_2(tmp_path):
    with FakeChatServer(reply) as server:
        out = vcg(server, tmp_path, unparseable="exclude").compute(RECORDS[:2] + RECORDS[4:])
        assert "consistency" not in out and "average" not in out and "average_of" not in out  # excluded
        assert out["average_pooled"] == pytest.approx(10 / 4)
        missing = {k: v for k, v in RECORDS[2].items() if k != "prediction_2"}
        with pytest.raises(DataError, match="no field 'prediction_2'"):
            vcg(server, tmp_path).compute([missing])
