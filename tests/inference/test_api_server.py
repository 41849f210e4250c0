"""The `vlmkit api` app's own behaviour, served by uvicorn in-process around a scripted stand-in model: the wire
format of a stream (server-sent events ending with [DONE]), one request at a time on the model, a stream whose
client goes away stops generating, and errors in OpenAI's shape for routes and bodies it does not know."""
import itertools
import json
import socket
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
import torch
import uvicorn

from vlmkit.inference.answer_watch import Reply
from vlmkit.inference.api_server import create_app


class Scripted:
    """Answers with ``pieces`` (streamed when asked, ``delay`` seconds apart); a non-streamed answer waits for
    ``release``. Records how many answers run at once and whether a stream was cut short."""

    def __init__(self, pieces=("a ", "b ", "c"), delay=0.0):
        self.contract = SimpleNamespace(placeholders=["<video>"])
        self.device = torch.device("cpu")
        self.pieces, self.delay = pieces, delay
        self.entered, self.release, self.interrupted = threading.Event(), threading.Event(), threading.Event()
        self.active = self.peak = self.sent = 0
        self.calls = []

    def reply(self, messages, video, stop=(), stream=None, **gen):
        self.calls.append((messages, video, list(stop), gen))
        self.active += 1
        self.peak = max(self.peak, self.active)
        self.entered.set()
        try:
            if stream is None:
                assert self.release.wait(60)
            else:
                for piece in self.pieces:
                    stream(piece)
                    self.sent += 1
                    time.sleep(self.delay)
        except BaseException:
            self.interrupted.set()
            raise
        finally:
            self.active -= 1
        return Reply("a b c", prompt_tokens=7, completion_tokens=3, finish_reason="stop")


@pytest.fixture
def serve(tmp_path):
    """serve(model) -> the base URL of an app around ``model`` (stopped at the end of the test)."""
    servers = []

    def start(model):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(model, "stand-in"), host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        for _ in range(600):
            if server.started:
                return f"http://127.0.0.1:{port}"
            time.sleep(0.05)
        raise AssertionError("the app did not start")

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"x")
    return str(path)


def body(video, **params):
    return {"model": "stand-in", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What?"}, {"type": "video_url", "video_url": {"url": video}}]}], **params}


def test_a_stream_is_server_sent_chunks_ending_with_done(serve, video):
    model = Scripted()
    url = serve(model)
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body(video, stream=True, seed=3, stop="END",
                                                                      max_tokens=9), timeout=60) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in answer.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: "):]) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == ["a ", "b ", "c"]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}
    assert "usage" not in chunks[-1]  # only with stream_options.include_usage
    messages, got_video, stop, gen = model.calls[0]
    assert messages == [{"role": "user", "content": "<video>\nWhat?"}] and got_video == video
    assert stop == ["END"] and gen == {"max_new_tokens": 9}


def test_the_model_answers_one_request_at_a_time(serve, video):
    model = Scripted()
    url = serve(model)
    answers = []

    def ask():
        answers.append(httpx.post(f"{url}/v1/chat/completions", json=body(video), timeout=60))

    first = threading.Thread(target=ask)
    first.start()
    assert model.entered.wait(30)
    model.entered.clear()
    second = threading.Thread(target=ask)
    second.start()
    assert not model.entered.wait(1.0)  # the second request waits for the lock
    model.release.set()
    first.join(60)
    second.join(60)
    assert [a.status_code for a in answers] == [200, 200] and model.peak == 1 and len(model.calls) == 2
    assert answers[0].json()["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_a_stream_whose_client_leaves_stops_generating(serve, video):
    model = Scripted(pieces=(f"w{i} " for i in itertools.count()), delay=0.01)
    url = serve(model)
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body(video, stream=True), timeout=60) as answer:
        for line in answer.iter_lines():
            if '"content": "w' in line:
                break  # one piece read: hang up
    assert model.interrupted.wait(30), "generation went on after the client left"
    sent = model.sent
    time.sleep(0.2)
    assert model.sent == sent and model.active == 0
    model.release.set()
    assert httpx.post(f"{url}/v1/chat/completions", json=body(video), timeout=60).status_code == 200  # lock free


def test_unknown_routes_and_bodies_get_openai_errors(serve, video):
    url = serve(Scripted())
    missing = httpx.post(f"{url}/v1/completions", json={}, timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    garbled = httpx.post(f"{url}/v1/chat/completions", content=b"{not json", timeout=30)
    assert garbled.status_code == 400 and "not JSON" in garbled.json()["error"]["message"]
    listed = httpx.get(f"{url}/v1/models", timeout=30).json()
    assert [m["id"] for m in listed["data"]] == ["stand-in"]
    unknown = httpx.get(f"{url}/v1/models/other", timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"


def test_a_failing_model_is_a_500_with_openai_shape(serve, video):
    class Broken(Scripted):
        def reply(self, *args, **kwargs):
            raise RuntimeError("out of memory")

    url = serve(Broken())
    for stream in (False, True):
        answer = httpx.post(f"{url}/v1/chat/completions", json=body(video, stream=stream), timeout=30)
        error = answer.json()["error"]
        assert answer.status_code == 500 and error["type"] == "server_error" and "out of memory" in error["message"]


def run_cli(*argv, hide=None):
    """`vlmkit api ARGV` in a fresh interpreter (``hide``: a module made unimportable there)."""
    import subprocess
    import sys

    code = ("import sys\n" + (f"sys.modules[{hide!r}] = None\n" if hide else "") +
            "from vlmkit.cli import main\nraise SystemExit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, "api", *argv], capture_output=True, text=True, timeout=120)


def test_the_command_refuses_clearly_before_serving(tmp_path):
    missing_extra = run_cli(str(tmp_path), hide="fastapi")
    assert missing_extra.returncode == 2 and "pip install 'vlmkit[api]'" in missing_extra.stderr
    no_root = run_cli(str(tmp_path), "--media-root", str(tmp_path / "nowhere"))
    assert no_root.returncode == 2 and f"--media-root {tmp_path / 'nowhere'}: no such folder" in no_root.stderr
    no_run = run_cli(str(tmp_path / "no_run"))
    assert no_run.returncode == 2 and str(tmp_path / "no_run") in no_run.stderr


def test_served_name_and_loopback():
    from vlmkit.inference.api_cmd import is_loopback, served_name

    assert served_name("output/my_run") == "my_run"
    for inside in ("output/my_run/checkpoints", "output/my_run/checkpoints/step_00000002"):
        assert served_name(inside) == "my_run"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_an_error_after_the_first_piece_is_an_error_event_then_done(serve, video):
    from vlmkit.errors import DataError

    class Faltering(Scripted):
        def reply(self, messages, video, stop=(), stream=None, **gen):
            stream("a ")
            raise DataError("frame 7 of clip.mp4 could not be decoded")

    url = serve(Faltering())
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body(video, stream=True), timeout=60) as answer:
        assert answer.status_code == 200  # the response had started
        lines = [line for line in answer.iter_lines() if line]
    error = json.loads(lines[-2][len("data: "):])["error"]
    assert "frame 7 of clip.mp4" in error["message"] and error["type"] == "invalid_request_error"
    assert lines[-1] == "data: [DONE]" and '"content": "a "' in lines[-3]
