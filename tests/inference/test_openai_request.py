"""Reading OpenAI chat-completions requests for `vlmkit api` (issue 19 item 5): the shapes clients send, the
settings they map to, and the refusals (each naming the parameter at fault)."""
import pytest

from vlmkit.inference.openai_request import RequestError, read_request


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "my clip.mp4"
    path.write_bytes(b"not decoded here")
    return path


def ask(clip, *extra_parts, **params):
    content = [{"type": "text", "text": "What happens?"}, {"type": "video_url", "video_url": {"url": clip}},
               *extra_parts]
    return {"model": "run", "messages": [{"role": "user", "content": content}], **params}


def refused(body, media_root=None) -> RequestError:
    with pytest.raises(RequestError) as caught:
        read_request(body, "run", "<video>", media_root)
    return caught.value


def test_a_video_part_becomes_the_placeholder_in_front_of_its_message(clip):
    chat = read_request(ask(clip.as_uri()), "run", "<video>")
    assert chat.video == str(clip) and chat.messages == [{"role": "user", "content": "<video>\nWhat happens?"}]
    assert chat.generation == {} and chat.stop == [] and chat.seed is None and not chat.stream
    for url in (str(clip), f"file://localhost{clip}"):  # a plain path, a file URL naming the local host
        assert read_request(ask(url), "run", "<video>").video == str(clip)
    qwen_style = {"model": "run", "messages": [{"role": "user", "content": [
        {"type": "video", "video": str(clip)}, {"type": "text", "text": "Who?"}, {"type": "text", "text": "Why?"}]}]}
    assert read_request(qwen_style, "run", "<video>").messages[0]["content"] == "<video>\nWho?\nWhy?"


def test_multi_turn_keeps_roles_and_puts_the_video_where_it_was_sent(clip):
    body = {"model": "run", "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi."}], "refusal": None, "tool_calls": None},
        {"role": "user", "content": [{"type": "video_url", "video_url": {"url": str(clip)}},
                                     {"type": "text", "text": "What is this?"}], "name": "ann"}]}
    assert read_request(body, "run", "<video>").messages == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "<video>\nWhat is this?"}]


def test_generation_parameters_map_to_the_models_settings(clip):
    chat = read_request(ask(str(clip), max_tokens=5, temperature=0.7, top_p=0.9, stop="END", seed=3,
                            repetition_penalty=1.1, stream=True, stream_options={"include_usage": True},
                            n=1, presence_penalty=0, frequency_penalty=0.0, logprobs=False, user="u1",
                            tools=None), "run", "<video>")
    assert chat.generation == {"max_new_tokens": 5, "do_sample": True, "temperature": 0.7, "top_p": 0.9,
                               "repetition_penalty": 1.1}
    assert chat.stop == ["END"] and chat.seed == 3 and chat.stream and chat.include_usage
    assert read_request(ask(str(clip), temperature=0), "run", "<video>").generation == {"do_sample": False}
    assert read_request(ask(str(clip), top_p=0.5), "run", "<video>").generation == {"do_sample": True, "top_p": 0.5}
    same = read_request(ask(str(clip), max_tokens=4, max_completion_tokens=4), "run", "<video>")
    assert same.generation == {"max_new_tokens": 4}


@pytest.mark.parametrize("params, param, words", [
    ({"top_k": 5}, "top_k", "unsupported parameter 'top_k'; accepted: model, messages"),
    ({"frequency_penalty": 0.5}, "frequency_penalty", "frequency_penalty=0.5 is not supported"),
    ({"n": 2}, "n", "n=2 is not supported"),
    ({"logprobs": True}, "logprobs", "logprobs=True is not supported"),
    ({"max_tokens": 0}, "max_tokens", "max_tokens must be at least 1"),
    ({"max_tokens": "5"}, "max_tokens", "max_tokens must be an integer"),
    ({"max_tokens": 3, "max_completion_tokens": 4}, "max_completion_tokens", "disagree"),
    ({"temperature": 3}, "temperature", "between 0 and 2"),
    ({"temperature": True}, "temperature", "must be a number"),
    ({"top_p": 0}, "top_p", "top_p must be in (0, 1]"),
    ({"stop": ["a", ""]}, "stop", "stop must be a non-empty string"),
    ({"seed": 1.5}, "seed", "seed must be an integer"),
    ({"stream": "yes"}, "stream", "stream must be true or false"),
    ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed with stream: true"),
    ({"stream": True, "stream_options": {"chunks": 2}}, "stream_options", "unsupported ['chunks']"),
])
def test_unsupported_or_malformed_parameters_are_refused(clip, params, param, words):
    err = refused(ask(str(clip), **params))
    assert err.status == 400 and err.param == param and words in err.message
    assert err.body()["error"]["param"] == param and err.body()["error"]["type"] == "invalid_request_error"


def test_wrong_or_missing_model_names_the_served_one(clip):
    err = refused({**ask(str(clip)), "model": "gpt-4o"})
    assert err.status == 404 and err.code == "model_not_found" and "'run'" in err.message
    body = ask(str(clip))
    del body["model"]
    assert refused(body).param == "model"


def test_video_refusals_name_the_path_and_what_is_accepted(clip, tmp_path):
    missing = tmp_path / "nowhere.mp4"
    err = refused(ask(str(missing)))
    assert err.code == "video_not_found" and str(missing) in err.message
    assert err.param == "messages[0].content[1]"
    err = refused({"model": "run", "messages": [{"role": "user", "content": "What happens?"}]})
    assert err.code == "missing_video" and "video_url" in err.message
    for url in ("https://example.com/a.mp4", "data:video/mp4;base64,AAAA"):
        err = refused(ask(url))
        assert err.code == "unsupported_video_url" and "local path or a file:// URL" in err.message
    assert "must name a local file" in refused(ask("file://otherhost/a.mp4")).message
    two = ask(str(clip), {"type": "video_url", "video_url": {"url": str(clip)}})
    assert "one video per conversation; got 2" in refused(two).message
    image = ask(str(clip), {"type": "image_url", "image_url": {"url": str(clip)}})
    assert "unsupported content part" in refused(image).message and refused(image).param == "messages[0].content[2]"
    assert "url" in refused(ask(None)).message


def test_media_root_confines_videos_and_resolves_relative_paths(clip, tmp_path):
    inside = read_request(ask(clip.name), "run", "<video>", media_root=str(tmp_path))
    assert inside.video == str(clip)
    outside = tmp_path.parent / "elsewhere.mp4"
    for url in (str(outside), "../elsewhere.mp4"):
        assert refused(ask(url), media_root=str(tmp_path)).code == "video_outside_media_root"


@pytest.mark.parametrize("messages, words", [
    ([{"role": "tool", "content": "x"}], "role must be one of"),
    ([{"role": "user", "content": "x", "tool_calls": []}], "tool calls are not supported"),
    ([{"role": "user", "content": 5}], "must be a string or a list"),
    ([], "non-empty list"),
    ("hello", "non-empty list"),
])
def test_malformed_messages_are_refused(messages, words):
    assert words in refused({"model": "run", "messages": messages}).message


def test_the_conversation_must_end_with_the_user(clip):
    body = ask(str(clip))
    body["messages"].append({"role": "assistant", "content": "It rolls."})
    assert "the last message must be the user's" in refused(body).message
