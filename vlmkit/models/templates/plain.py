"""LLaVA's 'plain' pretraining template: the media placeholder, then the caption and a newline."""
from __future__ import annotations

from vlmkit.models.templates.base import FormattedTemplate, TurnFormat
from vlmkit.registry import TEMPLATES


@TEMPLATES.register("plain")
def plain(end: str = "\n") -> FormattedTemplate:
    """'{user}{answer}{end}' with no roles; the user turn is usually just the placeholder."""
    return FormattedTemplate("plain", TurnFormat(answer_end=end, stop=(end,)))
