"""The tokenizer's own chat template (``tokenizer.chat_template``), with answer spans found by prefix rendering."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from vlmkit.errors import ConfigError, DataError
from vlmkit.models.templates.base import ChatTemplate, Rendered, normalize_turns
from vlmkit.registry import TEMPLATES


class HFChatTemplate(ChatTemplate):
    """Renders with ``tokenizer.apply_chat_template``.

    The span of answer i is what rendering turns[:i+1] adds to rendering turns[:i] with the generation
    prompt opened; a template whose renderings are not prefixes of each other cannot be masked and raises.
    """

    def __init__(self, system: Optional[str], stop: tuple[str, ...]):
        self.name = "hf_chat_template"
        self.system = system
        self.stop_strings = stop

    def _apply(self, tokenizer: Any, messages: list[dict], generation: bool) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

    def render(self, conversation: Sequence[Any], add_generation_prompt: bool = False,
               tokenizer: Any = None) -> Rendered:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ConfigError("template", "hf_chat_template needs a tokenizer that has a chat_template; "
                                          "pick a template such as vicuna_v1, chatml or phi3 otherwise")
        system_override, turns = normalize_turns(conversation)
        system = self.system if system_override is None else system_override
        head = [{"role": "system", "content": system}] if system is not None else []
        messages = head + [{"role": t.role, "content": t.content} for t in turns]
        if add_generation_prompt != (turns[-1].role == "user"):
            raise DataError("hf_chat_template: add_generation_prompt=True needs a conversation ending with a user "
                            "turn, False one ending with an assistant answer")
        spans = []
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self._apply(tokenizer, messages[:index], generation=True)
            upto = self._apply(tokenizer, messages[:index + 1], generation=False)
            if not upto.startswith(before):
                raise DataError("hf_chat_template: the tokenizer's chat template does not render conversations as "
                                "prefixes of each other, so answer spans cannot be found; use a vlmkit template")
            spans.append((len(before), len(upto)))
        text = self._apply(tokenizer, messages, generation=add_generation_prompt)
        if spans and not text.startswith(upto):
            raise DataError("hf_chat_template: the full rendering does not extend the per-answer renderings")
        return Rendered(text, tuple(spans))


@TEMPLATES.register("hf_chat_template", aliases=["tokenizer"])
def hf_chat_template(system: Optional[str] = None, stop: Optional[list[str]] = None) -> HFChatTemplate:
    """Use the tokenizer's chat_template; ``system`` adds a system turn; ``stop`` lists end-of-answer strings."""
    return HFChatTemplate(system, tuple(stop or ()))
