"""LLMVA-GEBC's OPT caption prompt: '[BOS]Video:<visual tokens>{prompt}{caption}</s>'."""
from __future__ import annotations

from vlmkit.models.templates.base import FormattedTemplate, TurnFormat
from vlmkit.registry import TEMPLATES


@TEMPLATES.register("opt_video", aliases=["gebc_opt"])
def opt_video(prefix: str = "Video:", end: str = "</s>") -> FormattedTemplate:
    """The user turn is '<video>{prompt}' (e.g. '<video>This video describes the x.The subject is')."""
    return FormattedTemplate("opt_video", TurnFormat(user=prefix + "{content}", answer_end=end, stop=(end,)))
