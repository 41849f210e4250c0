"""What every judge shares: cache lookup, retries with exponential backoff, parallel requests.

A judge turns chat messages into a reply text.  ``ask(system, user, accept)`` retries transport errors and
replies that ``accept`` rejects (returns None for), caches the final reply, and reports how it got it.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

from vlmkit.errors import VlmkitError
from vlmkit.metrics.judge_cache import JudgeCache, cache_key

DEFAULT_CACHE_DIR = "~/.cache/vlmkit/judge"
CACHE_DIR_ENV = "VLMKIT_JUDGE_CACHE"


class JudgeError(VlmkitError, RuntimeError):
    """The judge could not give a reply (after retries), or refused the request outright."""


class TransientJudgeError(JudgeError):
    """A failure worth retrying: connection error, timeout, HTTP 429/5xx, malformed response body."""


@dataclass
class JudgeReply:
    text: str
    parsed: Any          # what ``accept`` returned; None when the reply never parsed
    cached: bool
    attempts: int        # requests sent for this reply (0 when it came from the cache)


class ChatJudge:
    """Base of the judges; subclasses implement ``_complete(messages)`` and ``model_name``/``endpoint``."""

    kind = "judge"

    def __init__(self, cache_dir: Optional[str], max_retries: int, backoff_s: float, max_backoff_s: float,
                 concurrency: int, temperature: float, max_tokens: Optional[int]):
        if max_retries < 0 or concurrency < 1:
            raise ValueError(f"{self.kind}: max_retries must be >= 0 and concurrency >= 1, "
                             f"got {max_retries} and {concurrency}")
        self.cache_dir = os.path.expanduser(cache_dir or os.environ.get(CACHE_DIR_ENV, DEFAULT_CACHE_DIR))
        self.cache = JudgeCache(self.cache_dir)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.concurrency = concurrency
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.requests_sent = 0
        self._count_lock = threading.Lock()

    # subclasses -------------------------------------------------------------------------------
    model_name: str = ""
    endpoint: str = ""

    def _complete(self, messages: list[dict[str, str]]) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement _complete")

    # shared -----------------------------------------------------------------------------------
    def generation_params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    def identity(self) -> dict[str, str]:
        return {"kind": self.kind, "model": self.model_name, "endpoint": self.endpoint}

    def ask(self, system: str, user: str, accept: Optional[Callable[[str], Any]] = None) -> JudgeReply:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        key = cache_key(self.model_name, messages, self.generation_params())
        hit = self.cache.get(key)
        if hit is not None:
            return JudgeReply(hit["reply"], accept(hit["reply"]) if accept else None, cached=True, attempts=0)
        last_text: Optional[str] = None
        last_error: Optional[Exception] = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
            with self._count_lock:
                self.requests_sent += 1
            try:
                text = self._complete(messages)
            except TransientJudgeError as err:
                last_error = err
                continue
            last_text = text
            parsed = accept(text) if accept else None
            if accept is None or parsed is not None:
                self.cache.put(key, {"model": self.model_name, "params": self.generation_params(),
                                     "messages": messages, "reply": text, "parsed_ok": True})
                return JudgeReply(text, parsed, cached=False, attempts=attempt + 1)
        if last_text is not None:
            # Keep the unparseable reply too: a rerun then reproduces the same count at no cost.
            self.cache.put(key, {"model": self.model_name, "params": self.generation_params(),
                                 "messages": messages, "reply": last_text, "parsed_ok": False})
            return JudgeReply(last_text, None, cached=False, attempts=self.max_retries + 1)
        raise JudgeError(f"{self.kind} {self.model_name} at {self.endpoint} failed {self.max_retries + 1} times; "
                         f"last error: {last_error}. Replies obtained so far are cached in {self.cache_dir}, "
                         f"so a rerun only asks for the missing ones")

    def ask_many(self, requests: Sequence[tuple[str, str]],
                 accept: Optional[Callable[[str], Any]] = None) -> list[JudgeReply]:
        """``ask`` for every (system, user) pair, ``concurrency`` at a time, in input order."""
        if self.concurrency == 1:
            return [self.ask(system, user, accept) for system, user in requests]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda pair: self.ask(pair[0], pair[1], accept), requests))
