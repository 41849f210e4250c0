"""On-disk cache of judge replies: one JSON file per (judge model, generation settings, messages) hash.

Reruns therefore cost nothing and give the same numbers.  The endpoint is not part of the key, so the same
model behind another proxy reuses the replies; the model name and every message are.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional


def cache_key(model: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    material = json.dumps({"model": model, "messages": messages, "params": params}, sort_keys=True,
                          ensure_ascii=False)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class JudgeCache:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).expanduser()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> Optional[dict[str, Any]]:
        path = self._path(key)
        if not path.is_file():
            return None
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Write atomically (temp file + rename) so a killed run never leaves a half-written entry."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"key": key, **record}, handle, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
