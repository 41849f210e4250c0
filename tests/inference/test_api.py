"""`vlmkit api` (issue 19 item 5): the real command serves the tiny trained run on 127.0.0.1 and the `openai` client
talks to it. Its answers, streamed or not, equal `vlmkit.load(run).generate` / `chat` (which equal evaluate.py's
predictions, test_load.py); usage counts the prompt and the answer; bad requests come back as OpenAI errors."""
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai
import pytest
import torch

import vlmkit
from vlmkit.inference.inputs import build_batch, user_turns

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "inference.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny):
    """The URL of the README's `vlmkit api` command, run as written (on a free port) in the folder the tiny run lies
    in, in its own process group (killed at the end)."""
    folder = tiny[0]
    argv = shlex.split(re.search(r"^vlmkit api .*$", (REPO / "README.md").read_text(), re.M).group(0))
    port = free_port()
    argv[argv.index("--port") + 1] = str(port)
    log = (folder / f"api-{port}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "vlmkit.cli", *argv[1:], "--device", "cpu"], cwd=folder,
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)},
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"vlmkit api did not come up:\n{Path(log.name).read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model(tiny):
    return vlmkit.load(str(tiny[1]), device="cpu")


@pytest.fixture(scope="module")
def samples(tiny):
    """(absolute video path, record) per evaluated sample, in id order."""
    _, _, data, records = tiny
    ordered = sorted(records.values(), key=lambda r: r["id"])
    return [(r["media"] if r["media"].startswith("/") else str(data / r["media"]), r) for r in ordered]


def user(question, video_part):
    return {"role": "user", "content": [{"type": "text", "text": question}, video_part]}


def file_url(video):
    return {"type": "video_url", "video_url": {"url": Path(video).as_uri()}}


def test_models_lists_the_run(client):
    assert [m.id for m in client.models.list().data] == ["tiny_run"]
    assert client.models.retrieve("tiny_run").owned_by == "vlmkit"


def test_answers_equal_load_generate_with_usage(client, model, samples):
    for video, record in samples:
        expected = model.generate(video, record["question"])
        assert expected == record["prediction"]  # what evaluate.py wrote
        answer = client.chat.completions.create(model="tiny_run",
                                                messages=[user(record["question"], file_url(video))])
        choice = answer.choices[0]
        assert choice.message.role == "assistant" and choice.message.content == expected
        batch = build_batch(model.builder, [user_turns([{"role": "user", "content": record["question"]}],
                                                       "<video>")], [video])
        assert answer.usage.prompt_tokens == int(batch["attention_mask"].sum())  # visual tokens included
        words = len(model.contract.tokenizer(expected, add_special_tokens=False)["input_ids"])
        limit = model.settings()["max_new_tokens"]  # the tiny model tends to ramble up to it
        assert words <= answer.usage.completion_tokens <= limit
        assert choice.finish_reason == ("length" if answer.usage.completion_tokens == limit else "stop")
        assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_every_video_shape_clients_send_gives_the_same_answer(client, tiny, samples):
    video, record = samples[0]
    relative = os.path.relpath(video, tiny[0])  # from the server's working folder
    parts = [{"type": "video_url", "video_url": {"url": video}}, {"type": "video", "video": relative},
             {"type": "video", "video": Path(video).as_uri()}]
    for part in parts:
        answer = client.chat.completions.create(model="tiny_run", messages=[user(record["question"], part)])
        assert answer.choices[0].message.content == record["prediction"], part


def test_streamed_answer_adds_up_to_generate(client, model, samples):
    video, record = samples[1]
    stream = client.chat.completions.create(model="tiny_run", messages=[user(record["question"], file_url(video))],
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == model.generate(video, record["question"]) == record["prediction"]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1 and finishes[0] in ("stop", "length")
    assert not chunks[-1].choices and chunks[-1].usage.completion_tokens > 0  # the usage chunk comes last
    plain = client.chat.completions.create(model="tiny_run", messages=[user(record["question"], file_url(video))])
    assert chunks[-1].usage == plain.usage and finishes[0] == plain.choices[0].finish_reason


def test_a_long_answer_streams_in_pieces_that_add_up(client, model, samples):
    """Sampling with a seed makes the answer long and reproducible: equal to `generate` with the same seed."""
    video, record = samples[2]
    settings = {"temperature": 1.5, "top_p": 1.0, "seed": 11, "max_tokens": 12}
    chunks = list(client.chat.completions.create(model="tiny_run", messages=[user(record["question"],
                                                                                  file_url(video))],
                                                 stream=True, **settings))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    torch.manual_seed(11)
    expected = model.generate(video, record["question"], do_sample=True, temperature=1.5, top_p=1.0,
                              max_new_tokens=12)
    assert "".join(pieces) == expected and len(pieces) > 3
    again = client.chat.completions.create(model="tiny_run", messages=[user(record["question"], file_url(video))],
                                           **settings)
    assert again.choices[0].message.content == expected


def test_multi_turn_equals_chat(client, model, samples):
    video, record = samples[1]
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": record["question"]},
             {"role": "assistant", "content": "purple"}, {"role": "user", "content": "and then"}]
    expected = model.chat(turns, video)
    sent = [turns[0], user(record["question"], file_url(video)), *turns[2:]]
    answer = client.chat.completions.create(model="tiny_run", messages=sent)
    assert answer.choices[0].message.content == expected
    streamed = client.chat.completions.create(model="tiny_run", messages=sent, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == expected


def test_max_tokens_and_stop_end_the_answer(client, model, samples):
    video, record = samples[0]
    messages = [user(record["question"], file_url(video))]
    torch.manual_seed(5)
    reference = model.generate(video, record["question"], do_sample=True, temperature=1.5, max_new_tokens=12)
    short = client.chat.completions.create(model="tiny_run", messages=messages, temperature=1.5, seed=5,
                                           max_completion_tokens=2)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 2
    assert reference.startswith(short.choices[0].message.content)
    words = reference.split()
    assert len(words) > 3, reference
    stop = f" {words[2]}"
    cut = client.chat.completions.create(model="tiny_run", messages=messages, temperature=1.5, seed=5,
                                         max_tokens=12, stop=[stop])
    assert cut.choices[0].message.content == reference[:reference.index(stop)].strip()
    assert cut.choices[0].finish_reason == "stop" and cut.usage.completion_tokens < 12
    streamed = client.chat.completions.create(model="tiny_run", messages=messages, temperature=1.5, seed=5,
                                              max_tokens=12, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == cut.choices[0].message.content


def test_errors_are_openai_errors(client, samples, tiny):
    video, record = samples[0]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny_run", messages=[{"role": "user", "content": record["question"]}])
    assert caught.value.body["code"] == "missing_video"
    missing = str(tiny[0] / "nowhere.mp4")
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="tiny_run", stream=stream,
                                           messages=[user(record["question"], file_url(missing))])
        assert missing in caught.value.body["message"] and caught.value.body["code"] == "video_not_found"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny_run", messages=[user(record["question"], file_url(video))],
                                       frequency_penalty=0.5)
    assert caught.value.body["param"] == "frequency_penalty"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny_run", messages=[user(record["question"], file_url(video))],
                                       extra_body={"top_k": 4})
    assert caught.value.body["param"] == "top_k" and "accepted: model, messages" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="http URLs are not fetched"):
        client.chat.completions.create(model="tiny_run", messages=[user(record["question"], {
            "type": "video_url", "video_url": {"url": "http://example.com/clip.mp4"}})])
    with pytest.raises(openai.NotFoundError, match="tiny_run"):
        client.chat.completions.create(model="gpt-4o", messages=[user(record["question"], file_url(video))])


def test_a_file_that_is_not_a_video_is_a_400_naming_it(client, tiny, samples):
    bogus = tiny[0] / "notes.mp4"
    bogus.write_text("not a video")
    with pytest.raises(openai.BadRequestError, match="notes.mp4"):
        client.chat.completions.create(model="tiny_run", messages=[user(samples[0][1]["question"],
                                                                        file_url(bogus))])


def test_the_docs_curl_example_answers_as_generate(server, model, samples):
    command = re.search(r"^curl .*?}'$", DOCS.read_text(), re.M | re.S).group(0)
    video = samples[0][0]
    command = command.replace("http://127.0.0.1:8000", server).replace("file:///data/clip.mp4", Path(video).as_uri())
    answer = json.loads(subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True,
                                       timeout=120).stdout)
    question = json.loads(command.split("-d '", 1)[1][:-1])["messages"][0]["content"][0]["text"]
    assert answer["choices"][0]["message"]["content"] == model.generate(video, question)
