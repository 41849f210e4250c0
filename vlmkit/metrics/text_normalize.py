"""Answer normalisation for judge-free QA metrics (VQA/SQuAD style)."""
from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

from vlmkit.errors import DataError

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalise_answer(text: str, lowercase: bool = True, strip_punctuation: bool = True,
                     strip_articles: bool = True) -> str:
    """Lower-case, punctuation to spaces, drop a/an/the, collapse whitespace."""
    if lowercase:
        text = text.lower()
    if strip_punctuation:
        text = text.translate(_PUNCT)
    if strip_articles:
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def references_of(pred: dict[str, Any], metric: str) -> list[str]:
    """``references`` (a list) or ``answer`` (a string or list) of a prediction record."""
    refs: Any = pred.get("references", pred.get("answer"))
    if refs is None:
        raise DataError(f"{metric}: prediction {pred.get('id')!r} has neither 'references' nor 'answer' "
                        f"(fields: {sorted(pred)})")
    refs = [refs] if isinstance(refs, str) else list(refs)
    if not refs or not all(isinstance(r, str) for r in refs):
        raise DataError(f"{metric}: prediction {pred.get('id')!r} needs string references, got {refs!r}")
    return refs


def any_reference(pred: dict[str, Any], metric: str, test, options: Sequence[bool]) -> bool:
    lower, punct, articles = options
    said = normalise_answer(str(pred.get("prediction", "")), lower, punct, articles)
    return any(test(said, normalise_answer(r, lower, punct, articles)) for r in references_of(pred, metric))
