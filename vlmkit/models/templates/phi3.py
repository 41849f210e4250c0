"""Phi-3 instruct as VideoGPT+ writes it (conv_phi3_instruct, MPT separator style)."""
from __future__ import annotations

from vlmkit.models.templates.base import FormattedTemplate, TurnFormat
from vlmkit.registry import TEMPLATES


@TEMPLATES.register("phi3", aliases=["phi3_instruct"])
def phi3(system: str = "You are a helpful AI assistant.") -> FormattedTemplate:
    """'<|system|>\\n{system}<|end|>\\n<|user|>\\n{q}<|end|>\\n<|assistant|>\\n{a}<|end|>'."""
    return FormattedTemplate("phi3", TurnFormat(
        system=system, system_format="<|system|>\n{system}<|end|>", user="\n<|user|>\n{content}<|end|>",
        assistant_prefix="\n<|assistant|>\n", answer_end="<|end|>", stop=("<|end|>",)))
