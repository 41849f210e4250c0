"""LLaMA-2 chat: the system prompt sits inside the first [INST] block."""
from __future__ import annotations

from vlmkit.models.templates.base import FormattedTemplate, TurnFormat
from vlmkit.registry import TEMPLATES

LLAMA2_SYSTEM = ("You are a helpful language and vision assistant. You are able to understand the visual content "
                 "that the user provides, and assist the user with a variety of tasks using natural language.")


class Llama2Template(FormattedTemplate):
    """'[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{q} [/INST] {a} </s><s>[INST] {q2} [/INST]'.

    The first <s> is the tokenizer's BOS; later turns carry a literal <s>, as Meta's format does.
    """

    def system_text(self, system: str) -> str:
        return ""

    def user_text(self, index: int, content: str, system: str) -> str:
        if index == 0 and system:
            content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
        return ("" if index == 0 else "<s>") + f"[INST] {content} [/INST]"


@TEMPLATES.register("llama2", aliases=["llama_2", "llama2_chat"])
def llama2(system: str = LLAMA2_SYSTEM) -> FormattedTemplate:
    return Llama2Template("llama2", TurnFormat(
        system=system, assistant_prefix=" ", answer_end=" </s>", generation_prefix="", stop=("</s>",)))
