"""ChatML (Qwen2/2.5, Video-XL's qwen_1_5): '<|im_start|>role\\n...<|im_end|>\\n'."""
from __future__ import annotations

from vlmkit.models.templates.base import FormattedTemplate, TurnFormat
from vlmkit.registry import TEMPLATES


@TEMPLATES.register("chatml", aliases=["qwen", "qwen2", "qwen_1_5"])
def chatml(system: str = "You are a helpful assistant.") -> FormattedTemplate:
    """The answer and its <|im_end|> are supervised; the role header and the newline after are not."""
    return FormattedTemplate("chatml", TurnFormat(
        system=system, system_format="<|im_start|>system\n{system}<|im_end|>\n",
        user="<|im_start|>user\n{content}<|im_end|>\n", assistant_prefix="<|im_start|>assistant\n",
        answer_end="<|im_end|>", turn_end="\n", stop=("<|im_end|>",)))
