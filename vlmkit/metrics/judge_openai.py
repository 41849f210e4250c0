"""A judge behind any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, a proxy), stdlib HTTP only."""
from __future__ import annotations

import http.client
import json
import os
import urllib.error
from typing import Optional

from vlmkit.errors import ConfigError
from vlmkit.metrics.judge_base import ChatJudge, JudgeError, TransientJudgeError
from vlmkit.metrics.judge_http import DeadlineExceeded, build_opener, post, retry_after_seconds
from vlmkit.registry import METRICS

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Request timeout, conflict, too early, rate limited: the same request may succeed later (so may any 5xx).
RETRYABLE_STATUS = (408, 409, 425, 429)


@METRICS.register("openai_judge")
class OpenAIJudge(ChatJudge):
    """Chat-completions judge: base URL, model and key from the config or environment variables."""

    kind = "openai_judge"

    def __init__(self, model: str, base_url: Optional[str] = None, base_url_env: str = "OPENAI_BASE_URL",
                 api_key_env: str = "OPENAI_API_KEY", temperature: float = 0.0, max_tokens: Optional[int] = None,
                 seed: Optional[int] = None, timeout_s: float = 60.0, max_retries: int = 5, backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, concurrency: int = 4, cache_dir: Optional[str] = None,
                 cache_unparseable: bool = False):
        """
        model: the judge model, pinned (e.g. gpt-3.5-turbo-0125); it is part of every cache key.
        base_url: endpoint root ending in /v1; when null, $``base_url_env`` or the OpenAI API.
        api_key_env: environment variable holding the key (keys never go into configs or results);
            an unset variable sends no Authorization header (fine for a local server).
        timeout_s: deadline for one whole request (connect, send, reply, same-origin redirects), not per read.
        max_retries, backoff_s, max_backoff_s: retries after transport errors, HTTP 408/409/425/429/5xx and
            unparseable replies; waits are jittered exponential (backoff_s * 2^n, capped), or the server's
            Retry-After (capped at max_backoff_s).
        cache_dir: reply cache; null means $VLMKIT_JUDGE_CACHE or ~/.cache/vlmkit/judge.
        cache_unparseable: keep replies the metric cannot parse in the cache too (a rerun then reuses them);
            by default they are asked again on the next run.
        """
        super().__init__(cache_dir, max_retries, backoff_s, max_backoff_s, concurrency, temperature, max_tokens,
                         cache_unparseable)
        if not model:
            raise ConfigError("model", "openai_judge needs a model name, e.g. gpt-3.5-turbo-0125")
        self.model_name = model
        root = base_url or os.environ.get(base_url_env) or DEFAULT_BASE_URL
        self.endpoint = root.rstrip("/") + "/chat/completions"
        self.api_key_env = api_key_env
        self.seed = seed
        if timeout_s <= 0:
            raise ConfigError("timeout_s", f"openai_judge needs a positive timeout_s, got {timeout_s}")
        self.timeout_s = timeout_s
        self._opener = build_opener()

    def generation_params(self) -> dict:
        return {**super().generation_params(), "seed": self.seed}

    def _complete(self, messages: list[dict[str, str]]) -> str:
        body = {"model": self.model_name, "messages": messages, "temperature": self.temperature}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.seed is not None:
            body["seed"] = self.seed
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            payload = post(self._opener, self.endpoint, json.dumps(body).encode("utf-8"), headers, self.timeout_s)
        except urllib.error.HTTPError as err:
            raise self._http_error(err) from err
        except DeadlineExceeded as err:
            raise TransientJudgeError(f"no complete reply from {self.endpoint} within timeout_s={self.timeout_s}"
                                      ) from err
        except (OSError, http.client.HTTPException) as err:
            # Every transport failure (refused, reset, timed out, truncated body, bad status line) is worth retrying.
            raise TransientJudgeError(f"cannot get a reply from {self.endpoint}: {type(err).__name__}: {err}"
                                      ) from err
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise TransientJudgeError(f"malformed response from {self.endpoint}: {payload[:200]!r}") from err
        if not isinstance(content, str):
            raise TransientJudgeError(f"response from {self.endpoint} has no text content: {payload[:200]!r}")
        return content

    def _http_error(self, err: urllib.error.HTTPError) -> JudgeError:
        try:
            detail = err.read()[:300].decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            detail = "(body unreadable)"
        if err.code in RETRYABLE_STATUS or err.code >= 500:
            return TransientJudgeError(f"HTTP {err.code} from {self.endpoint}: {detail}",
                                       retry_after=retry_after_seconds(err.headers.get("Retry-After")))
        hint = f" (is ${self.api_key_env} set?)" if err.code in (401, 403) else ""
        if 300 <= err.code < 400:
            hint = " (redirect loop or too many redirects)"
        return JudgeError(f"HTTP {err.code} from {self.endpoint}{hint}: {detail}")
