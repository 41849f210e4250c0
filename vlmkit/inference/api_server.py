"""The OpenAI-compatible app of ``vlmkit api`` (FastAPI): ``POST /v1/chat/completions`` (plain and streamed as
server-sent events), ``GET /v1/models``, ``GET /health``.

The model answers one request at a time (a lock): each answer is generated in a worker thread holding the lock,
its pieces handed to the event loop through a queue. A streamed request waits for its first piece (or its error)
before the response starts, so a video that cannot be read is a 400 like any other bad input; a client that goes
away stops its generation at the next token. Errors have OpenAI's shape (``{"error": {message, type, param,
code}}``), so OpenAI clients raise them as their own errors.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Optional

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from vlmkit.errors import VlmkitError
from vlmkit.inference.answer_watch import Reply
from vlmkit.inference.openai_request import ChatRequest, RequestError, read_request


LOG = logging.getLogger("vlmkit.api")


class Cancelled(Exception):
    """Raised from the streaming callback when the client has gone: it ends the generation."""


class Generation:
    """One answer generated in a worker thread; ``events`` receives ("text", piece) while it streams, then
    ("done", Reply) or ("error", exception), then ("end", None)."""

    def __init__(self, model, lock: threading.Lock, chat: ChatRequest):
        self.model, self.lock, self.chat = model, lock, chat
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="vlmkit-api-generation").start()

    def _emit(self, kind: str, value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
        except RuntimeError:  # the event loop has closed (the server is stopping)
            pass

    def _piece(self, text: str) -> None:
        if self.cancelled.is_set():
            raise Cancelled
        self._emit("text", text)

    def _run(self) -> None:
        chat = self.chat
        try:
            with self.lock, seeded(chat.seed, self.model.device):
                reply = self.model.reply(chat.messages, chat.video, stop=chat.stop,
                                         stream=self._piece if chat.stream else None, **chat.generation)
            self._emit("done", reply)
        except Cancelled:
            pass
        except Exception as err:  # handed to the request, which answers with an error
            if not isinstance(err, VlmkitError):
                LOG.error("answering failed", exc_info=err)
            self._emit("error", err)
        finally:
            self._emit("end", None)

    async def next(self) -> tuple[str, Any]:
        return await self.events.get()


@contextmanager
def seeded(seed: Optional[int], device: torch.device) -> Iterator[None]:
    """A block in which torch's generators start from ``seed`` (the server's own state is restored after)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def error_of(err: Exception) -> RequestError:
    """An exception from answering as the error the client gets: vlmkit's own (bad input: a video it cannot
    decode, a conversation the template refuses) as 400, anything else as 500."""
    if isinstance(err, RequestError):
        return err
    if isinstance(err, VlmkitError):
        return RequestError(str(err))
    return RequestError(f"internal error: {type(err).__name__}: {err}", status=500, kind="server_error")


def error_response(err: RequestError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


def create_app(model, model_name: str, media_root: Optional[str] = None) -> FastAPI:
    """The app serving ``model`` (an ``InferenceModel``) as ``model_name``; videos only under ``media_root`` when
    given."""
    app = FastAPI(title="vlmkit api", description=f"OpenAI-compatible chat completions for {model_name}")
    lock = threading.Lock()
    created = int(time.time())
    placeholder = model.contract.placeholders[0]
    card = {"id": model_name, "object": "model", "created": created, "owned_by": "vlmkit"}

    @app.exception_handler(RequestError)
    async def refused(request: Request, err: RequestError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:  # unknown route, wrong method
        code = "not_found" if err.status_code == 404 else None
        return error_response(RequestError(f"{request.method} {request.url.path}: {err.detail}", code=code,
                                           status=err.status_code))

    @app.exception_handler(Exception)
    async def failed(request: Request, err: Exception) -> JSONResponse:
        return error_response(error_of(err))

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [card]}

    @app.get("/v1/models/{name:path}")
    def model_card(name: str) -> dict:
        if name != model_name:
            raise RequestError(f"The model {name!r} does not exist: this server serves {model_name!r}",
                               param="model", code="model_not_found", status=404)
        return card

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            body = json.loads(await request.body())
        except ValueError as err:
            raise RequestError(f"the request body is not JSON: {err}") from None
        chat = read_request(body, model_name, placeholder, media_root)
        generation = Generation(model, lock, chat)
        first = await generation.next()
        if first[0] == "error":
            raise error_of(first[1])
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model_name}
        if not chat.stream:
            return completion(head, first[1])
        return StreamingResponse(server_events(head, chat, generation, first), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return app


def usage_of(reply: Reply) -> dict[str, int]:
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens}


def completion(head: dict, reply: Reply) -> dict:
    return {**head, "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                         "finish_reason": reply.finish_reason, "logprobs": None}],
            "usage": usage_of(reply)}


async def server_events(head: dict, chat: ChatRequest, generation: Generation,
                        first: tuple[str, Any]) -> AsyncIterator[str]:
    """OpenAI's chunks as server-sent events: the role, the pieces, the finish reason, the usage when asked
    (``stream_options.include_usage``), ``[DONE]``. An error after the first piece is sent as an error event."""

    def event(choices: list, **extra: Any) -> str:
        usage = {"usage": None} if chat.include_usage else {}  # OpenAI's chunks carry usage only when asked
        chunk = {**head, "object": "chat.completion.chunk", "choices": choices, **usage, **extra}
        return f"data: {json.dumps(chunk)}\n\n"

    def delta(content: dict, finish: Optional[str] = None) -> list:
        return [{"index": 0, "delta": content, "finish_reason": finish, "logprobs": None}]

    try:
        yield event(delta({"role": "assistant", "content": ""}))
        kind, value = first
        while kind != "end":
            if kind == "text":
                yield event(delta({"content": value}))
            elif kind == "done":
                yield event(delta({}, value.finish_reason))
                if chat.include_usage:
                    yield event([], usage=usage_of(value))
            else:
                yield f"data: {json.dumps(error_of(value).body())}\n\n"
            kind, value = await generation.next()
        yield "data: [DONE]\n\n"
    finally:  # the client went away or the stream is complete: either way nothing more is generated
        generation.cancelled.set()
