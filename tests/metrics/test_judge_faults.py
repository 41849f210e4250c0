"""The API judge against a misbehaving OpenAI-style server on 127.0.0.1: redirects, truncated bodies, resets,
dripping replies, rate limits, garbage, and a corrupt cache.  It must finish every evaluation with the failed
samples counted (never scored, never cached) and never send the API key to another origin."""
import email.utils
import json
import logging
import time

import pytest

from tests.metrics.judge_server import FakeChatServer
from tests.metrics.test_judged_qa import judged_qa, qa_reply, samples
from vlmkit.metrics.judge_base import JudgeError
from vlmkit.metrics.judge_http import retry_after_seconds


def cache_files(cache):
    return sorted(cache.rglob("*.json"))


def record_sleeps(metric):
    sleeps = []
    metric.judge._sleep = sleeps.append
    return sleeps


def test_cross_origin_redirect_is_refused_and_the_key_stays_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    with FakeChatServer(qa_reply) as other:
        other_port = other.httpd.server_address[1]
        with FakeChatServer(qa_reply, faults=[f"redirect:{other.base_url}/chat/completions"]) as server:
            with pytest.raises(JudgeError, match=rf"another origin \(http://127.0.0.1:{other_port}.*base_url"):
                judged_qa(server, tmp_path).compute(samples("a dog"))
            assert len(server.requests) == 1 and server.requests[0]["auth"] == "Bearer sk-secret"
    assert other.requests == []  # a different port is a different origin: not even contacted
    assert cache_files(tmp_path) == []


def test_same_origin_redirect_is_followed_with_the_same_post(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    with FakeChatServer(qa_reply, faults=["redirect:/v1/chat/completions"]) as server:
        out = judged_qa(server, tmp_path, max_retries=0).compute(samples("a dog"))
        assert [r["auth"] for r in server.requests] == ["Bearer sk-secret"] * 2
        assert server.requests[1]["body"] == server.requests[0]["body"]
    assert out["num_judged"] == 1 and out["score"] == 4.0


def test_every_transport_fault_is_retried(tmp_path):
    faults = ["truncate", "reset", "badjson", "nochoices", "429:0", "500"]
    with FakeChatServer(qa_reply, faults=faults) as server:
        out = judged_qa(server, tmp_path, max_retries=len(faults)).compute(samples("a dog"))
        assert len(server.requests) == len(faults) + 1
    assert out["num_judged"] == 1 and out["num_failed"] == 0 and out["score"] == 4.0


@pytest.mark.parametrize("fault", ["truncate", "badjson"])
def test_a_sample_that_never_gets_a_reply_is_counted_not_scored_or_cached(tmp_path, caplog, fault):
    with FakeChatServer(qa_reply, faults=[fault] * 3) as server:
        out = judged_qa(server, tmp_path, max_retries=2).compute(samples("a dog", "a cat"))
        assert len(server.requests) == 3 + 1
        assert out["num_failed"] == 1 and out["num_judged"] == 1 and out["num_unparseable"] == 0
        assert out["num_samples"] == 2 and out["score"] == 1.0  # "a cat" alone: the failed sample is left out
        assert len(cache_files(tmp_path)) == 1
        assert "no reply for 1 of 2 samples (ids [0])" in caplog.text
        judged_qa(server, tmp_path, max_retries=2).compute(samples("a dog", "a cat"))
        assert len(server.requests) == 5  # the failed one is asked again, the other comes from the cache


@pytest.mark.parametrize("fault", ["drip", "driphead"])
def test_a_dripping_server_is_cut_at_the_request_deadline(tmp_path, caplog, fault):
    with FakeChatServer(qa_reply, faults=[fault], drip_s=0.1) as server:  # the reply would take about 30 s
        out = judged_qa(server, tmp_path, max_retries=0, timeout_s=1).compute(samples("a dog"))
        assert server.drip_ended.wait(60), "the server still drips: the client never hung up"
    [(sent, whole)] = server.drips
    assert sent < whole / 2, (sent, whole)  # hung up mid-reply (about 10 of 300 bytes), not after reading it all
    assert out["num_failed"] == 1 and "within timeout_s=1" in caplog.text
    assert cache_files(tmp_path) == []


def test_retry_after_is_honoured(tmp_path):
    with FakeChatServer(qa_reply, faults=["429:3", "429:1000"]) as server:
        metric = judged_qa(server, tmp_path, max_backoff_s=30)
        sleeps = record_sleeps(metric)
        assert metric.compute(samples("a dog"))["num_judged"] == 1
    assert sleeps == [3.0, 30.0]  # the server's wait, capped at max_backoff_s


def test_retry_after_accepts_seconds_and_http_dates():
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert retry_after_seconds("7") == 7.0 and 28 <= retry_after_seconds(soon) <= 30
    assert retry_after_seconds("soonish") is None and retry_after_seconds(None) is None


def test_backoff_is_exponential_with_jitter(tmp_path):
    with FakeChatServer(qa_reply, faults=["500"] * 5) as server:
        metric = judged_qa(server, tmp_path, max_retries=5, backoff_s=1.0, max_backoff_s=8.0)
        sleeps = record_sleeps(metric)
        metric.compute(samples("a dog"))
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0]
    assert len(sleeps) == 5
    assert all(ceiling / 2 <= s <= ceiling for s, ceiling in zip(sleeps, ceilings)), sleeps
    assert all(s != ceiling for s, ceiling in zip(sleeps, ceilings)), "retries without jitter move in lockstep"


def test_endpoint_is_part_of_the_cache_key(tmp_path):
    with FakeChatServer(qa_reply) as first, FakeChatServer(qa_reply) as second:
        judged_qa(first, tmp_path).compute(samples("a dog"))
        judged_qa(second, tmp_path).compute(samples("a dog"))
        assert len(first.requests) == len(second.requests) == 1


@pytest.mark.parametrize("content", ["{not json", "[]", '{"reply": 3}', "\udcff"])
def test_a_corrupt_cache_entry_is_asked_again_with_a_warning(tmp_path, caplog, content):
    with FakeChatServer(qa_reply) as server:
        judged_qa(server, tmp_path).compute(samples("a dog"))
        [entry] = cache_files(tmp_path)
        entry.write_bytes(content.encode("utf-8", "surrogateescape"))
        with caplog.at_level(logging.WARNING):
            out = judged_qa(server, tmp_path).compute(samples("a dog"))
        assert len(server.requests) == 2 and out["score"] == 4.0
    assert str(entry) in caplog.text
    assert json.loads(entry.read_text())["reply"] == qa_reply([{"content": "Predicted Answer: a dog\n"}])


def test_a_refusing_endpoint_stops_the_parallel_requests(tmp_path):
    with FakeChatServer(qa_reply, status=401) as server:
        with pytest.raises(JudgeError, match="HTTP 401"):
            judged_qa(server, tmp_path, concurrency=4).compute(samples(*["a dog"] * 40))
        assert len(server.requests) < 40


def test_score_sample_reports_a_failed_sample_as_an_error(tmp_path):
    with FakeChatServer(qa_reply, faults=["reset"] * 2) as server:
        verdict = judged_qa(server, tmp_path, max_retries=1).score_sample(samples("a dog")[0])
    assert verdict["error"] and "failed 2 times" in verdict["error"] and verdict["score"] is None
