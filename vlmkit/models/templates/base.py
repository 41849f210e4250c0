"""Conversation templates as data: a rendered text plus the character spans of the assistant answers.

A conversation is a list of turns, LLaVA style ``{"from": "human"|"gpt", "value": ...}`` or chat style
``{"role": "user"|"assistant"|"system", "content": ...}``. Turns alternate user/assistant; an optional
leading system turn replaces the template's default system prompt. Answer spans cover the answer text and
its end marker (``</s>``, ``<|im_end|>``...), so the model learns to stop; everything else is context.
"""
from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from vlmkit.errors import DataError

ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                "system": "system"}


@dataclass(frozen=True)
class Turn:
    role: str      # "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Rendered:
    """The prompt text and the [start, end) character spans that are supervised (assistant answers)."""

    text: str
    answer_spans: tuple[tuple[int, int], ...]

    def answers(self) -> list[str]:
        return [self.text[s:e] for s, e in self.answer_spans]


def normalize_turns(conversation: Sequence[Any]) -> tuple[Optional[str], list[Turn]]:
    """(system override or None, user/assistant turns), checking roles and alternation."""
    system: Optional[str] = None
    turns: list[Turn] = []
    for index, raw in enumerate(conversation):
        if isinstance(raw, Turn):
            role, content = raw.role, raw.content
        elif isinstance(raw, Mapping):
            role_key = raw.get("role", raw.get("from"))
            content = raw.get("content", raw.get("value"))
            role = ROLE_ALIASES.get(str(role_key).lower()) if role_key is not None else None
            if role is None or not isinstance(content, str):
                raise DataError(f"conversation turn {index} needs 'from' (human/gpt) or 'role' (user/assistant/"
                                f"system) and a string 'value'/'content'; got {dict(raw)!r}")
        else:
            raise DataError(f"conversation turn {index} must be a mapping, got {type(raw).__name__}")
        if role == "system":
            if index != 0:
                raise DataError(f"conversation turn {index}: a system turn is only allowed first")
            system = content
            continue
        expected = "user" if len(turns) % 2 == 0 else "assistant"
        if role != expected:
            raise DataError(f"conversation turn {index}: expected a {expected} turn (turns alternate user/assistant, "
                            f"starting with user), got {role}")
        turns.append(Turn(role, content))
    if not turns:
        raise DataError("conversation has no user turn")
    return system, turns


class ChatTemplate(abc.ABC):
    """Interface of every template: ``render`` and the strings that end an answer at generation time."""

    name: str = ""
    stop_strings: tuple[str, ...] = ()

    @abc.abstractmethod
    def render(self, conversation: Sequence[Any], add_generation_prompt: bool = False,
               tokenizer: Any = None) -> Rendered:
        """Training (conversation ends with an answer) or generation (ends with a user turn, prompt opened)."""


@dataclass(frozen=True)
class TurnFormat:
    """Where the text around each message goes. ``{content}`` / ``{system}`` are filled in."""

    system: str = ""                 # default system prompt
    system_format: str = "{system}"  # how a non-empty system prompt is written before the first turn
    user: str = "{content}"          # a whole user turn
    assistant_prefix: str = ""       # opens an answer (context, not supervised)
    answer_end: str = ""             # closes an answer (supervised)
    turn_end: str = ""               # after the answer end (context)
    generation_prefix: Optional[str] = None  # opens the answer at generation time; None = assistant_prefix
    stop: tuple[str, ...] = ()


class FormattedTemplate(ChatTemplate):
    """A template fully described by a ``TurnFormat``; families with odd rules override ``user_text``."""

    def __init__(self, name: str, fmt: TurnFormat):
        self.name = name
        self.fmt = fmt
        self.stop_strings = fmt.stop

    def system_text(self, system: str) -> str:
        return self.fmt.system_format.format(system=system) if system else ""

    def user_text(self, index: int, content: str, system: str) -> str:
        return self.fmt.user.format(content=content)

    def render(self, conversation: Sequence[Any], add_generation_prompt: bool = False,
               tokenizer: Any = None) -> Rendered:
        system_override, turns = normalize_turns(conversation)
        system = self.fmt.system if system_override is None else system_override
        ends_with_user = turns[-1].role == "user"
        if add_generation_prompt != ends_with_user:
            want = "end with a user turn" if add_generation_prompt else "end with an assistant answer"
            raise DataError(f"template {self.name}: a conversation rendered with add_generation_prompt="
                            f"{add_generation_prompt} must {want}")
        parts = [self.system_text(system)]
        spans: list[tuple[int, int]] = []
        length = len(parts[0])
        for pair_index in range(0, len(turns), 2):
            user = self.user_text(pair_index // 2, turns[pair_index].content, system)
            if pair_index + 1 == len(turns):
                opener = self.fmt.assistant_prefix if self.fmt.generation_prefix is None else self.fmt.generation_prefix
                parts += [user, opener]
                break
            answer = turns[pair_index + 1].content + self.fmt.answer_end
            start = length + len(user) + len(self.fmt.assistant_prefix)
            spans.append((start, start + len(answer)))
            parts += [user, self.fmt.assistant_prefix, answer, self.fmt.turn_end]
            length = start + len(answer) + len(self.fmt.turn_end)
        return Rendered("".join(parts), tuple(spans))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
