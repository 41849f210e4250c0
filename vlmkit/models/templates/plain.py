"""LLaVA's 'plain' pretraining template: the media placeholder, then the caption and a newline."""
from __future__ import annotations

from vlmkit.models.templates.base import FormattedTemplate, TurnFormat
from vlmkit.registry import TEMPLATES


@TEMPLATES.register("plain")
def plain(end: str = "\n", user_end: str = "") -> FormattedTemplate:
    """'{user}{user_end}{answer}{end}' with no roles; the user turn is usually just the placeholder. ``user_end``
    keeps a question's last word apart from the answer's first when the user turn holds text (the CPU demo)."""
    return FormattedTemplate("plain", TurnFormat(user="{content}" + user_end.replace("{", "{{").replace("}", "}}"),
                                                 answer_end=end, stop=(end,)))
