import math

import pytest

from tests.metrics.judge_server import FakeChatServer
from vlmkit.metrics.judge_base import JudgeError
from vlmkit.metrics.judge_parse import judge_score, parse_judge_dict
from vlmkit.metrics.judge_prompts import VCGBENCH, VIDEO_CHATGPT_QA, prompt_version
from vlmkit.registry import METRICS

# What the fake judge says, by the predicted answer it is shown.
VERDICTS = {"a dog": "Sure! {'pred': 'yes', 'score': 4.8}", "a cat": "{'pred': 'no', 'score': 1}",
            "running dog": '```json\n{"pred": "Yes", "score": 5}\n```', "gibberish": "I cannot judge this."}


def qa_reply(messages):
    user = messages[-1]["content"]
    predicted = user.split("Predicted Answer: ")[1].split("\n")[0]
    return VERDICTS[predicted]


def samples(*preds):
    return [{"id": i, "question": "what animal is shown", "answer": "dog", "prediction": p}
            for i, p in enumerate(preds)]


def judged_qa(server, cache, **judge):
    cfg = {"name": "openai_judge", "model": "judge-model-1", "base_url": server.base_url, "cache_dir": str(cache),
           "backoff_s": 0.001, "max_backoff_s": 0.01, "concurrency": 1, "max_retries": 4, **judge}
    return METRICS.build({"name": "judged_qa", "judge": cfg})


def test_retries_parsing_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    faults = ["500", "badjson", "nochoices", "text:no dict here"]
    with FakeChatServer(qa_reply, faults=faults) as server:
        out = judged_qa(server, tmp_path).compute(samples("a dog", "a cat", "running dog"))
        # the first sample needed 5 requests (4 faults), the others one each
        assert len(server.requests) == 7
        assert server.requests[0]["path"] == "/v1/chat/completions"
        assert server.requests[0]["auth"] == "Bearer sk-test"
        assert server.requests[0]["body"]["model"] == "judge-model-1"
        assert server.requests[0]["body"]["temperature"] == 0.0
        # yes/4 (4.8 truncated), no/1, yes/5: lmms-eval's verified 66.67 / 3.333
        assert out["accuracy"] == pytest.approx(200 / 3)
        assert out["score"] == pytest.approx(10 / 3)
        assert out["num_unparseable"] == 0 and out["judge.requests"] == 7
        assert out["judge.model"] == "judge-model-1"
        assert out["judge.endpoint"] == server.base_url + "/chat/completions"
        assert out["judge.prompt_version"] == prompt_version(VIDEO_CHATGPT_QA)

        rerun = judged_qa(server, tmp_path).compute(samples("a dog", "a cat", "running dog"))
        assert len(server.requests) == 7  # every reply came from the disk cache
        assert rerun["judge.requests"] == 0 and rerun["num_cached"] == 3
        assert {k: v for k, v in rerun.items() if k not in ("judge.requests", "num_cached")} == \
               {k: v for k, v in out.items() if k not in ("judge.requests", "num_cached")}


def test_unparseable_replies_are_counted_reasked_on_rerun_and_optionally_zeroed(tmp_path):
    with FakeChatServer(qa_reply) as server:
        metric = judged_qa(server, tmp_path, max_retries=2)
        out = metric.compute(samples("a dog", "gibberish"))
        assert len(server.requests) == 1 + 3  # the gibberish one was asked 3 times
        assert len(list(tmp_path.rglob("*.json"))) == 1  # only the parsed reply is cached
        assert out["num_unparseable"] == 1 and out["num_judged"] == 1 and out["num_failed"] == 0
        assert out["accuracy"] == 100.0 and out["score"] == 4.0
        lenient = METRICS.build({"name": "judged_qa", "unparseable": "no_zero", "judge": {
            "name": "openai_judge", "model": "judge-model-1", "base_url": server.base_url, "max_retries": 0,
            "cache_dir": str(tmp_path)}}).compute(samples("a dog", "gibberish"))
        assert len(server.requests) == 5  # the parsed reply came from the cache, the unparseable one was re-asked
        assert lenient["accuracy"] == 50.0 and lenient["score"] == 2.0


def test_cache_unparseable_keeps_unparseable_replies_only_for_judges_that_ask_for_it(tmp_path):
    with FakeChatServer(qa_reply) as server:
        for _ in range(2):
            out = judged_qa(server, tmp_path, max_retries=0, cache_unparseable=True).compute(samples("gibberish"))
        assert len(server.requests) == 1 and out["num_unparseable"] == 1 and out["num_cached"] == 1
        # a default judge does not trust that cached bad reply: it asks again
        out = judged_qa(server, tmp_path, max_retries=0).compute(samples("gibberish"))
        assert len(server.requests) == 2 and out["num_cached"] == 0


def test_persistent_server_errors_are_counted_not_scored_or_cached(tmp_path):
    with FakeChatServer(qa_reply, faults=["500"] * 3) as server:
        out = judged_qa(server, tmp_path, max_retries=2).compute(samples("a dog", "a cat"))
        assert len(server.requests) == 3 + 1
        assert out["num_failed"] == 1 and out["num_judged"] == 1 and out["num_unparseable"] == 0
        assert out["accuracy"] == 0.0 and out["score"] == 1.0  # only "a cat" (no/1) was scored
        rerun = judged_qa(server, tmp_path, max_retries=2).compute(samples("a dog", "a cat"))
        assert len(server.requests) == 5 and rerun["num_failed"] == 0 and rerun["num_cached"] == 1


def test_persistent_server_errors_raise_under_on_failure_raise(tmp_path):
    with FakeChatServer(qa_reply, faults=["500"] * 10) as server:
        metric = METRICS.build({"name": "judged_qa", "on_failure": "raise", "judge": {
            "name": "openai_judge", "model": "judge-model-1", "base_url": server.base_url, "max_retries": 2,
            "backoff_s": 0.001, "cache_dir": str(tmp_path)}})
        with pytest.raises(JudgeError, match="failed 3 times"):
            metric.compute(samples("a dog"))
        assert len(server.requests) == 3


def test_auth_errors_are_not_retried(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeChatServer(qa_reply, status=401) as server:
        with pytest.raises(JudgeError, match=r"HTTP 401.*OPENAI_API_KEY"):
            judged_qa(server, tmp_path).compute(samples("a dog"))
        assert len(server.requests) == 1 and server.requests[0]["auth"] is None


def test_cache_key_depends_on_judge_model(tmp_path):
    with FakeChatServer(qa_reply) as server:
        judged_qa(server, tmp_path).compute(samples("a dog"))
        judged_qa(server, tmp_path, model="judge-model-2").compute(samples("a dog"))
        assert len(server.requests) == 2


@pytest.mark.parametrize("text, expected", [
    ("{'pred': 'yes', 'score': 4}", {"pred": "yes", "score": 4}),
    ("Sure! {'pred': 'no', 'score': 1}", {"pred": "no", "score": 1}),
    ('{"pred": "yes", "score": 3}', {"pred": "yes", "score": 3}),
    ("{''score': 4}", {"score": "4"}),
    ("pred: yes, score: 2", {"pred": "yes", "score": "2"}),
    ("no idea", None),
])
def test_parse_judge_dict(text, expected):
    keys = tuple(expected) if expected else ("pred", "score")
    assert parse_judge_dict(text, keys) == expected


def test_judge_score_truncates_like_upstream():
    assert judge_score(4.8) == 4 and judge_score("3") == 3 and judge_score("high") is None
    assert judge_score(7) is None


def vcg_reply(messages):
    system = messages[0]["content"]
    for marker, reply in (("factual accuracy", "{'score': 3}"), ("detail orientation", "{''score': 2}"),
                          ("contextual understanding", "{'score': 4.5}"), ("temporal", "{'score': 1}"),
                          ("consistency", '{"score": 5}')):
        if marker in system:
            return reply
    raise AssertionError(system)


def test_vcgbench_five_dimensions(tmp_path):
    preds = [
        {"id": 0, "task_type": "generic", "question": "q", "answer": "a", "prediction": "p"},
        {"id": 1, "task_type": "temporal", "question": "q", "answer": "a", "prediction": "p"},
        {"id": 2, "task_type": "consistency", "question": "q1", "question_2": "q2", "answer": "a",
         "prediction": "p1", "prediction_2": "p2"},
    ]
    with FakeChatServer(vcg_reply) as server:
        metric = METRICS.build({"name": "vcgbench", "judge": {
            "name": "openai_judge", "model": "m", "base_url": server.base_url, "cache_dir": str(tmp_path)}})
        out = metric.compute(preds)
        assert len(server.requests) == 5
        consistency_user = [r for r in server.requests if "Question 2: q2" in r["body"]["messages"][1]["content"]]
        assert len(consistency_user) == 1
    assert (out["correctness"], out["detail"], out["context"], out["temporal"], out["consistency"]) == (3, 2, 4, 1, 5)
    assert out["average"] == pytest.approx(3.0)
    assert out["judge.prompt_version"] == prompt_version(VCGBENCH)


def test_vcgbench_diverse_routing_and_breakdown(tmp_path):
    preds = [{"id": i, "task_type": t, "question": "q", "answer": "a", "prediction": f"p{i}"}
             for i, t in enumerate(["summary", "spatial"])]
    with FakeChatServer(vcg_reply) as server:
        out = METRICS.build({"name": "vcgbench", "routing": "vcgbench_diverse", "judge": {
            "name": "openai_judge", "model": "m", "base_url": server.base_url,
            "cache_dir": str(tmp_path)}}).compute(preds)
    assert out["type/summary"] == pytest.approx(2.5) and out["num_correctness"] == 2
    assert "average" not in out and "temporal" not in out


def test_prompts_are_the_protocol_texts():
    user = VIDEO_CHATGPT_QA["qa"].render(question="Q?", answer="A", pred="P")[1]
    assert user.startswith("Please evaluate the following video-based question-answer pair:\n\nQuestion: Q?\n"
                           "Correct Answer: A\nPredicted Answer: P\n\n")
    assert user.endswith("{'pred': 'yes', 'score': 4.8}.")
    assert VCGBENCH["correctness"].user.endswith("{{''score': 4.8}}.")
    assert not math.isnan(float(len(prompt_version(VCGBENCH))))
