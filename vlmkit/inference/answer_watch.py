"""What a served answer reports besides its text: how many tokens the prompt and the answer took and why the answer
ended, and the caller's own stop strings (an OpenAI request's ``stop``)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from transformers.generation.stopping_criteria import StoppingCriteria


@dataclass
class Reply:
    """One answer with its usage. ``finish_reason``: ``stop`` (end of sequence or a stop string) or ``length``
    (``max_new_tokens`` reached first)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class AnswerWatch(StoppingCriteria):
    """A transformers stopping criterion that watches one generation: it counts the generation steps (one new token
    each), keeps the latest ids, and ends a sequence once its text holds one of ``stops`` (never otherwise, so an
    answer without ``stops`` is generated exactly as without the watch)."""

    def __init__(self, tokenizer, template_stops: Sequence[str], stops: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.template_stops = [s for s in template_stops if s]
        self.stops = [s for s in stops if s]
        self.steps, self.prompt_tokens = 0, 0
        self.latest: Optional[torch.Tensor] = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        self.steps += 1
        self.latest = input_ids
        if not self.stops:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        texts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        return torch.tensor([any(stop in text for stop in self.stops) for text in texts], dtype=torch.bool,
                            device=input_ids.device)

    def cut(self, answer: str) -> str:
        """``answer`` (already cut at the template's stop strings) up to the first of the caller's stops."""
        for stop in self.stops:
            if stop in answer:
                answer = answer[:answer.index(stop)]
        return answer.strip()

    def reply(self, answer: str, max_new_tokens: int) -> Reply:
        """``answer`` (cut) with its usage."""
        return Reply(answer, self.prompt_tokens, self.steps, self._finish_reason(max_new_tokens))

    def _finish_reason(self, max_new_tokens: int) -> str:
        if self.steps < max_new_tokens or self.latest is None:
            return "stop"
        # the limit was reached: "length" unless the last token ended the sequence or a stop string came first
        ids = self.latest[0]
        if self.tokenizer.eos_token_id is not None and int(ids[-1]) == self.tokenizer.eos_token_id:
            return "stop"
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return "stop" if any(stop in text for stop in (*self.template_stops, *self.stops)) else "length"
