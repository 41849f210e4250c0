"""Stream an answer while it is generated: a transformers streamer that decodes the new tokens after each step
and hands on the text added since, cut at the chat template's stop strings as the final answer is."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from transformers.generation.streamers import BaseStreamer


class CallbackStreamer(BaseStreamer):
    """``on_text(piece)`` for each increment of the answer (one sequence: batch size 1, greedy or sampled).

    The first ``put`` holds the prompt ids (empty when generating from embeddings) and is skipped. A tail that
    could be the start of a stop string, or an unfinished multi-byte character, waits for the next token."""

    def __init__(self, tokenizer, stop_strings: Sequence[str], on_text: Callable[[str], None]):
        self.tokenizer, self.stops, self.on_text = tokenizer, [s for s in stop_strings if s], on_text
        self.ids: list[int] = []
        self.sent, self.prompt_seen, self.stopped = "", False, False

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        if value.ndim > 1:
            if value.shape[0] != 1:
                raise ValueError("streaming needs one sequence at a time (batch size 1, num_beams 1)")
            value = value[0]
        self.ids.extend(int(i) for i in value.tolist())
        self._emit(final=False)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        if self.stopped:
            return
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        for stop in self.stops:
            if stop in text:
                text, self.stopped = text[:text.index(stop)], True
        if not final and not self.stopped:
            text = text.rstrip("\ufffd")  # a character whose bytes are not all there yet
            held = max((n for stop in self.stops for n in range(1, len(stop)) if text.endswith(stop[:n])), default=0)
            text = text[:len(text) - held]
        text = text.lstrip()
        if final or self.stopped:
            text = text.rstrip()
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self.on_text(text[len(self.sent):])
            self.sent = text
