"""Robust parsing of a judge's dict-like reply: ``ast.literal_eval`` of the ``{...}`` part, then JSON, then a
per-key regex fallback (handles prose around the dict, code fences, and VCGBench's own ``{''score': 4}``)."""
from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from typing import Any, Optional


def _dict_span(text: str) -> Optional[str]:
    start = text.find("{")
    end = text.find("}", start + 1)
    return text[start:end + 1] if start >= 0 and end > start else None


def parse_judge_dict(text: str, keys: Sequence[str]) -> Optional[dict[str, Any]]:
    """The reply as a dict holding every key in ``keys``, or None when it cannot be read."""
    span = _dict_span(text)
    if span is not None:
        for loader in (ast.literal_eval, json.loads):
            try:
                value = loader(span)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, dict) and all(k in value for k in keys):
                return value
    found: dict[str, Any] = {}
    for key in keys:
        match = re.search(rf"""['"]*{re.escape(key)}['"]*\s*:\s*['"]?([^'",}}\n]+)""", text)
        if match is None:
            return None
        found[key] = match.group(1).strip()
    return found


def judge_score(value: Any) -> Optional[int]:
    """Upstream ``int(score)``: 4.8 -> 4 (truncation), "4" -> 4; None for anything else or outside 0..5."""
    try:
        score = int(float(value))
    except (TypeError, ValueError):
        return None
    return score if 0 <= score <= 5 else None
