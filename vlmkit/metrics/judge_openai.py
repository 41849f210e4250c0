"""A judge behind any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, a proxy), stdlib HTTP only."""
from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from typing import Optional

from vlmkit.errors import ConfigError
from vlmkit.metrics.judge_base import ChatJudge, JudgeError, TransientJudgeError
from vlmkit.registry import METRICS

DEFAULT_BASE_URL = "https://api.openai.com/v1"


@METRICS.register("openai_judge")
class OpenAIJudge(ChatJudge):
    """Chat-completions judge: base URL, model and key from the config or environment variables."""

    kind = "openai_judge"

    def __init__(self, model: str, base_url: Optional[str] = None, base_url_env: str = "OPENAI_BASE_URL",
                 api_key_env: str = "OPENAI_API_KEY", temperature: float = 0.0, max_tokens: Optional[int] = None,
                 seed: Optional[int] = None, timeout_s: float = 60.0, max_retries: int = 5, backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, concurrency: int = 4, cache_dir: Optional[str] = None):
        """
        model: the judge model, pinned (e.g. gpt-3.5-turbo-0125); it is part of every cache key.
        base_url: endpoint root ending in /v1; when null, $``base_url_env`` or the OpenAI API.
        api_key_env: environment variable holding the key (keys never go into configs or results);
            an unset variable sends no Authorization header (fine for a local server).
        cache_dir: reply cache; null means $VLMKIT_JUDGE_CACHE or ~/.cache/vlmkit/judge.
        """
        super().__init__(cache_dir, max_retries, backoff_s, max_backoff_s, concurrency, temperature, max_tokens)
        if not model:
            raise ConfigError("model", "openai_judge needs a model name, e.g. gpt-3.5-turbo-0125")
        self.model_name = model
        root = base_url or os.environ.get(base_url_env) or DEFAULT_BASE_URL
        self.endpoint = root.rstrip("/") + "/chat/completions"
        self.api_key_env = api_key_env
        self.seed = seed
        self.timeout_s = timeout_s

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
        request = urllib.request.Request(self.endpoint, data=json.dumps(body).encode("utf-8"), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:300].decode("utf-8", "replace")
            if err.code == 429 or err.code >= 500:
                raise TransientJudgeError(f"HTTP {err.code} from {self.endpoint}: {detail}") from err
            hint = f" (is ${self.api_key_env} set?)" if err.code in (401, 403) else ""
            raise JudgeError(f"HTTP {err.code} from {self.endpoint}{hint}: {detail}") from err
        except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
            raise TransientJudgeError(f"cannot reach {self.endpoint}: {err}") from err
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise TransientJudgeError(f"malformed response from {self.endpoint}: {payload[:200]!r}") from err
        if not isinstance(content, str):
            raise TransientJudgeError(f"response from {self.endpoint} has no text content: {payload[:200]!r}")
        return content
