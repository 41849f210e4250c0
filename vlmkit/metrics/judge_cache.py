"""On-disk cache of judge replies: one JSON file per (judge model, endpoint, generation settings, messages) hash.

Reruns therefore cost nothing and give the same numbers.  The endpoint is part of the key: the same model name
behind another server (another vLLM build, quantisation or proxy) may judge differently.  An unreadable entry
(a disk or sync hiccup, a hand edit) is logged with its file name and treated as a miss, so the judge is asked
again and the entry rewritten.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

_log = logging.getLogger(__name__)


def cache_key(model: str, endpoint: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    material = json.dumps({"model": model, "endpoint": endpoint, "messages": messages, "params": params},
                          sort_keys=True, ensure_ascii=False)
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
        try:
            with open(path, encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError) as err:  # ValueError covers JSONDecodeError and UnicodeDecodeError
            _log.warning("judge cache entry %s is unreadable (%s: %s); asking the judge again", path,
                         type(err).__name__, err)
            return None
        if not isinstance(record, dict) or not isinstance(record.get("reply"), str):
            _log.warning("judge cache entry %s has no 'reply' text; asking the judge again", path)
            return None
        return record

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Write atomically (temp file + rename) so a killed run never leaves a half-written entry."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"key": key, **record}, handle, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
