"""PLLaVA's training conversation (process_qa with end_signal (' ', '</s>'), mm_alone False)."""
from __future__ import annotations

from vlmkit.models.templates.base import FormattedTemplate, TurnFormat
from vlmkit.registry import TEMPLATES


@TEMPLATES.register("pllava")
def pllava(system: str = "", user_role: str = "USER:", assistant_role: str = "ASSISTANT:",
           end: str = "</s>") -> FormattedTemplate:
    """'{system} USER:{q}</s>ASSISTANT:{a}</s>'; '</s>' also follows the question, as in PLLaVA's code.

    The Yi-34B variant is user_role='<|im_start|>user\\n', assistant_role='<|im_start|>assistant\\n',
    end='<|im_end|>\\n'. An instruction goes in ``system`` (written as '{system} ').
    """
    return FormattedTemplate("pllava", TurnFormat(
        system=system, system_format="{system} ", user=user_role + "{content}" + end,
        assistant_prefix=assistant_role, answer_end=end, stop=(end,)))
