"""An OpenAI ``/v1/chat/completions`` request body, read and checked for ``vlmkit api``: the conversation as
``InferenceModel.chat`` takes it, the one local video it is about, and the generation settings it asks for.

Everything a request may hold is named here; anything else is refused with OpenAI's error fields (``RequestError``),
so a client never gets an answer computed without a setting it asked for. ``null`` counts as not given (some clients
send every parameter). Parameters clients send at their neutral value (``n: 1``, penalties 0, ``logprobs: false``)
are accepted at that value only; ``user`` (an end-user id) is accepted and not used.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote, urlparse

from vlmkit.data.datasets.base import media_turn

# OpenAI's parameters that map onto the model's generation (repetition_penalty: vLLM's extra parameter).
MAPPED = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed", "repetition_penalty")
ACCEPTED = ("model", "messages", "stream", "stream_options", *MAPPED, "user")
NEUTRAL = {"n": 1, "frequency_penalty": 0, "presence_penalty": 0, "logprobs": False}
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
VIDEO_PARTS = ("video_url", "video")


class RequestError(Exception):
    """A request refused: HTTP ``status`` and OpenAI's error object (message, type, param, code)."""

    def __init__(self, message: str, param: Optional[str] = None, code: Optional[str] = None, status: int = 400,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.kind = message, param, code, status, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class ChatRequest:
    """What a request asks of the model: ``InferenceModel.reply(messages, video, stop=stop, **generation)``."""

    messages: list[dict]
    video: str
    generation: dict[str, Any] = field(default_factory=dict)
    stop: list[str] = field(default_factory=list)
    seed: Optional[int] = None
    stream: bool = False
    include_usage: bool = False


def read_request(body: Any, model_name: str, placeholder: str, media_root: Optional[str] = None) -> ChatRequest:
    """``body`` (the parsed JSON) as a ``ChatRequest``, or a ``RequestError`` naming the parameter at fault.
    The video placeholder goes in front of the text of the message that holds the video part, as the datasets
    put it in front of the question."""
    if not isinstance(body, dict):
        raise RequestError(f"the request body must be a JSON object, got {type(body).__name__}")
    given = {key: value for key, value in body.items() if value is not None}
    check_parameters(given)
    if "model" not in given:
        raise RequestError(f"model is required: {model_name!r} (GET /v1/models)", param="model")
    if given["model"] != model_name:
        raise RequestError(f"The model {given.get('model')!r} does not exist: this server serves {model_name!r} "
                           f"(GET /v1/models)", param="model", code="model_not_found", status=404)
    messages, video = read_messages(given.get("messages"), placeholder, media_root)
    stream = expect(given, "stream", bool, False)
    options = expect(given, "stream_options", dict, {})
    if options and not stream:
        raise RequestError("stream_options is only allowed with stream: true", param="stream_options")
    unknown = sorted(set(options) - {"include_usage"})
    if unknown:
        raise RequestError(f"stream_options: unsupported {unknown}; accepted: include_usage",
                           param="stream_options")
    include_usage = expect(options, "include_usage", bool, False, where="stream_options.")
    generation, stop, seed = read_generation(given)
    return ChatRequest(messages, video, generation, stop, seed, stream, include_usage)


def check_parameters(given: dict) -> None:
    for key, value in given.items():
        if key in ACCEPTED:
            continue
        if key in NEUTRAL:
            if value != NEUTRAL[key] or isinstance(value, bool) != isinstance(NEUTRAL[key], bool):
                raise RequestError(f"{key}={value!r} is not supported by this server (only {NEUTRAL[key]!r})",
                                   param=key, code="unsupported_parameter")
            continue
        raise RequestError(f"unsupported parameter {key!r}; accepted: {', '.join(ACCEPTED)} "
                           f"(and {', '.join(f'{k}={v!r}' for k, v in NEUTRAL.items())})",
                           param=key, code="unsupported_parameter")


def expect(given: dict, key: str, kind: type, default: Any, where: str = "") -> Any:
    """``given[key]`` (or ``default``), checked to be a ``kind``: float takes any number, int and float no bool."""
    value = given.get(key, default)
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok:
        name = {float: "a number", int: "an integer", bool: "true or false", dict: "an object"}[kind]
        raise RequestError(f"{where}{key} must be {name}, got {value!r}", param=f"{where}{key}")
    return value


def read_generation(given: dict) -> tuple[dict[str, Any], list[str], Optional[int]]:
    """The model's generation settings, the stop strings and the seed a request asks for. Greedy unless the
    request samples: ``temperature`` > 0, or ``top_p`` alone; ``temperature: 0`` is greedy."""
    generation: dict[str, Any] = {}
    lengths = {key: expect(given, key, int, None) for key in ("max_tokens", "max_completion_tokens")
               if key in given}
    if len(set(lengths.values())) > 1:
        raise RequestError(f"max_tokens and max_completion_tokens disagree ({lengths}); give one",
                           param="max_completion_tokens")
    for key, value in lengths.items():
        if value < 1:
            raise RequestError(f"{key} must be at least 1, got {value}", param=key)
        generation["max_new_tokens"] = value
    if "temperature" in given:
        temperature = expect(given, "temperature", float, None)
        if not 0 <= temperature <= 2:
            raise RequestError(f"temperature must be between 0 and 2, got {temperature}", param="temperature")
        generation["do_sample"] = temperature > 0
        if temperature > 0:
            generation["temperature"] = float(temperature)
    if "top_p" in given:
        top_p = expect(given, "top_p", float, None)
        if not 0 < top_p <= 1:
            raise RequestError(f"top_p must be in (0, 1], got {top_p}", param="top_p")
        generation.setdefault("do_sample", True)
        generation["top_p"] = float(top_p)
    if "repetition_penalty" in given:
        penalty = expect(given, "repetition_penalty", float, None)
        if penalty <= 0:
            raise RequestError(f"repetition_penalty must be positive, got {penalty}", param="repetition_penalty")
        generation["repetition_penalty"] = float(penalty)
    stop = given.get("stop", [])
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise RequestError(f"stop must be a non-empty string or a list of them, got {given.get('stop')!r}",
                           param="stop")
    seed = expect(given, "seed", int, None) if "seed" in given else None
    return generation, stop, seed


# ---------------------------------------------------------------------------------------------------- messages
def read_messages(messages: Any, placeholder: str, media_root: Optional[str]) -> tuple[list[dict], str]:
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list of {role, content} objects", param="messages")
    turns, videos = [], []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RequestError(f"{where} must be an object with role and content", param=where)
        message = {key: value for key, value in message.items() if value is not None}  # a replayed answer's nulls
        extra = sorted(set(message) - {"role", "content", "name"})
        if extra:
            raise RequestError(f"{where}: unsupported {extra} (tool calls are not supported); a message holds "
                               f"role, content and optionally name", param=f"{where}.{extra[0]}")
        role = ROLES.get(message.get("role"))
        if role is None:
            raise RequestError(f"{where}.role must be one of {', '.join(ROLES)}, got {message.get('role')!r}",
                               param=f"{where}.role")
        text, found = read_content(message.get("content"), f"{where}.content", role)
        videos += [(url, spot, i) for url, spot in found]
        turns.append({"role": role, "content": text})
    if turns[-1]["role"] != "user":
        raise RequestError(f"the last message must be the user's, got {turns[-1]['role']!r}",
                           param=f"messages[{len(turns) - 1}].role")
    if not videos:
        raise RequestError("no video: put one in a user message's content as {\"type\": \"video_url\", "
                           "\"video_url\": {\"url\": \"file:///path/to/clip.mp4\"}} (or a plain path as url)",
                           param="messages", code="missing_video")
    if len(videos) > 1:
        raise RequestError(f"one video per conversation; got {len(videos)} video parts "
                           f"({', '.join(spot for _, spot, _ in videos)})", param=videos[1][1])
    url, spot, index = videos[0]
    turns[index]["content"] = media_turn(turns[index]["content"], placeholder)
    return turns, local_video(url, spot, media_root)


def read_content(content: Any, where: str, role: str) -> tuple[str, list[tuple[str, str]]]:
    """A message's text (its text parts joined by newlines) and its video parts as (url, where)."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise RequestError(f"{where} must be a string or a list of content parts, got {content!r}", param=where)
    texts, videos = [], []
    for j, part in enumerate(content):
        spot = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in VIDEO_PARTS and role == "user":
            videos.append((video_url(part, kind, spot), spot))
        else:
            raise RequestError(f"{spot}: unsupported content part {part!r}; accepted: {{\"type\": \"text\", "
                               f"\"text\": ...}} and, in user messages, {{\"type\": \"video_url\", \"video_url\": "
                               f"{{\"url\": \"file:///...\"}}}} or {{\"type\": \"video\", \"video\": PATH}}",
                               param=spot)
    return "\n".join(texts), videos


def video_url(part: dict, kind: str, spot: str) -> str:
    value = part.get(kind)
    url = value.get("url") if kind == "video_url" and isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        shape = '{"url": PATH_OR_FILE_URL}' if kind == "video_url" else "a path or file:// URL"
        raise RequestError(f"{spot}.{kind} must be {shape}, got {value!r}", param=f"{spot}.{kind}")
    return url


def local_video(url: str, spot: str, media_root: Optional[str]) -> str:
    """The local file a video URL names: ``file://`` URLs and plain paths (relative ones under ``media_root``, or
    the server's working folder). With ``media_root``, nothing outside it is read."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise RequestError(f"{spot}: {url}: a file URL must name a local file (file:///abs/path)", param=spot)
        path = unquote(parsed.path)
    elif len(parsed.scheme) > 1:  # one letter: a Windows drive
        raise RequestError(f"{spot}: {url[:80]}: {parsed.scheme} URLs are not fetched; give a local path or a "
                           f"file:// URL", param=spot, code="unsupported_video_url")
    else:
        path = url
    if media_root is not None:
        root = Path(media_root).resolve()
        resolved = (root / path).resolve()
        if resolved != root and root not in resolved.parents:
            raise RequestError(f"{spot}: {path}: outside the served media folder {root}", param=spot,
                               code="video_outside_media_root")
        path = str(resolved)
    if not os.path.exists(path):
        raise RequestError(f"{spot}: {path}: no such video file or frame folder", param=spot,
                           code="video_not_found")
    return os.path.abspath(path)
