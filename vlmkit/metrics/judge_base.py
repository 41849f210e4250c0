"""What every judge shares: cache lookup, retries with jittered exponential backoff, parallel requests.

A judge turns chat messages into a reply text.  ``ask(system, user, accept)`` retries transport errors and
replies that ``accept`` rejects (returns None for), caches a reply that parses (an unparseable one only with
``cache_unparseable``), and reports how it got it.  A request that never got a reply is never cached.
"""
from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal, Optional

from vlmkit.errors import VlmkitError
from vlmkit.metrics.judge_cache import JudgeCache, cache_key

DEFAULT_CACHE_DIR = "~/.cache/vlmkit/judge"
CACHE_DIR_ENV = "VLMKIT_JUDGE_CACHE"


class JudgeError(VlmkitError, RuntimeError):
    """The judge could not give a reply (after retries), or refused the request outright."""


class TransientJudgeError(JudgeError):
    """A failure worth retrying: transport error, deadline passed, HTTP 408/429/5xx, malformed response body."""

    def __init__(self, message: str, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After), if it said


class JudgeRetriesExhausted(JudgeError):
    """Every attempt for one request failed with a transient error; the next run asks again."""


@dataclass
class JudgeReply:
    text: str
    parsed: Any          # what ``accept`` returned; None when the reply never parsed
    cached: bool
    attempts: int        # requests sent for this reply (0 when it came from the cache)
    error: Optional[str] = None  # why no reply came back (ask_many's on_failure="record"); never cached


class ChatJudge:
    """Base of the judges; subclasses implement ``_complete(messages)`` and ``model_name``/``endpoint``."""

    kind = "judge"

    def __init__(self, cache_dir: Optional[str], max_retries: int, backoff_s: float, max_backoff_s: float,
                 concurrency: int, temperature: float, max_tokens: Optional[int], cache_unparseable: bool = False):
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
        self.cache_unparseable = cache_unparseable
        self._rng = random.Random()
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
        """The reply, from the cache or the judge; raises JudgeRetriesExhausted when no reply came back."""
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        key = cache_key(self.model_name, self.endpoint, messages, self.generation_params())
        hit = self.cache.get(key)
        if hit is not None:
            parsed = accept(hit["reply"]) if accept else None
            # An unparseable cached reply (an older run, or one bad episode of the endpoint) is asked again.
            if accept is None or parsed is not None or self.cache_unparseable:
                return JudgeReply(hit["reply"], parsed, cached=True, attempts=0)
        last_text: Optional[str] = None
        last_error: Optional[Exception] = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._sleep(self.retry_delay(attempt, last_error))
            with self._count_lock:
                self.requests_sent += 1
            try:
                text = self._complete(messages)
            except TransientJudgeError as err:
                last_error = err
                continue
            last_text, last_error = text, None
            parsed = accept(text) if accept else None
            if accept is None or parsed is not None:
                self._store(key, messages, text, parsed_ok=True)
                return JudgeReply(text, parsed, cached=False, attempts=attempt + 1)
        if last_text is not None:
            if self.cache_unparseable:
                self._store(key, messages, last_text, parsed_ok=False)
            return JudgeReply(last_text, None, cached=False, attempts=self.max_retries + 1)
        raise JudgeRetriesExhausted(
            f"{self.kind} {self.model_name} at {self.endpoint} failed {self.max_retries + 1} times; "
            f"last error: {last_error}. Replies obtained so far are cached in {self.cache_dir}, "
            f"so a rerun only asks for the missing ones")

    def ask_many(self, requests: Sequence[tuple[str, str]], accept: Optional[Callable[[str], Any]] = None,
                 on_failure: Literal["raise", "record"] = "raise") -> list[JudgeReply]:
        """``ask`` for every (system, user) pair, ``concurrency`` at a time, in input order.

        Every request is tried (and every reply cached) before a failure is reported: ``raise`` then raises one
        JudgeError for all of them, ``record`` returns them as replies with ``error`` set (never cached), for the
        metric to count.  Errors that no retry can fix (HTTP 401, a refused redirect) raise at once.
        """
        if on_failure not in ("raise", "record"):
            raise ValueError(f"on_failure must be 'raise' or 'record', got {on_failure!r}")
        if self.concurrency == 1:
            replies = [self._ask_or_fail(system, user, accept) for system, user in requests]
        else:
            with ThreadPoolExecutor(self.concurrency) as pool:
                futures = [pool.submit(self._ask_or_fail, system, user, accept) for system, user in requests]
                wait(futures, return_when=FIRST_EXCEPTION)
                fatal = next((f.exception() for f in futures if f.done() and f.exception()), None)
                if fatal is not None:
                    for future in futures:
                        future.cancel()  # no point sending the rest to an endpoint that refuses us
                    raise fatal
                replies = [future.result() for future in futures]
        failed = [r for r in replies if r.error is not None]
        if failed and on_failure == "raise":
            raise JudgeRetriesExhausted(f"{len(failed)} of {len(replies)} judge requests got no reply; first: "
                                        f"{failed[0].error}")
        return replies

    def _ask_or_fail(self, system: str, user: str, accept: Optional[Callable[[str], Any]]) -> JudgeReply:
        try:
            return self.ask(system, user, accept)
        except JudgeRetriesExhausted as err:
            return JudgeReply("", None, cached=False, attempts=self.max_retries + 1, error=str(err))

    def retry_delay(self, attempt: int, error: Optional[Exception]) -> float:
        """The server's Retry-After when it gave one, else exponential backoff with jitter (concurrent workers
        that failed together then do not retry together); both capped at max_backoff_s."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s) * self._rng.uniform(0.5, 1.0)

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _store(self, key: str, messages: list[dict[str, str]], text: str, parsed_ok: bool) -> None:
        self.cache.put(key, {"model": self.model_name, "endpoint": self.endpoint, "params": self.generation_params(),
                             "messages": messages, "reply": text, "parsed_ok": parsed_ok})
