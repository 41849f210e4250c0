"""What the web chat's buttons do, in plain Python (no Gradio here): Gradio calls these methods with the values of
the page's components and shows what they return or yield, so the conversation logic is tested without a browser.

The conversation is a list of ``{"role", "content"}`` messages (Gradio's chatbot format too); every question is
answered by ``InferenceModel.chat`` with the whole conversation so far, as ``vlmkit chat`` does. Problems the
user can fix (no video, an unreadable file, a bad setting) are shown in the status line, not raised."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import numpy as np

from vlmkit.errors import ConfigError, VlmkitError
from vlmkit.inference.webchat.frames import describe, sampled_frames

Messages = list[dict]
READY = "Upload or pick a video, then ask a question about it."


def generation_from_page(max_new_tokens: float, greedy: bool, temperature: float, top_p: float,
                         repetition_penalty: float) -> dict[str, Any]:
    """The page's generation controls as keyword arguments of ``InferenceModel.chat`` (the names of
    ``vlmkit.inference.options``). One beam: a streamed answer is one sequence. Temperature and top-p apply only
    when sampling (``greedy`` off)."""
    if max_new_tokens is None or int(max_new_tokens) < 1:
        raise ConfigError("max new tokens", f"must be at least 1, got {max_new_tokens!r}")
    if repetition_penalty is None or float(repetition_penalty) <= 0:
        raise ConfigError("repetition penalty", f"must be > 0 (1 = none), got {repetition_penalty!r}")
    settings = {"max_new_tokens": int(max_new_tokens), "num_beams": 1, "do_sample": not greedy,
                "repetition_penalty": float(repetition_penalty)}
    if not greedy:
        if temperature is None or float(temperature) <= 0:
            raise ConfigError("temperature", f"must be > 0 when sampling (or tick greedy), got {temperature!r}")
        if top_p is None or not 0 < float(top_p) <= 1:
            raise ConfigError("top-p", f"must be in (0, 1] when sampling, got {top_p!r}")
        settings.update(temperature=float(temperature), top_p=float(top_p))
    return settings


def stream_reply(model, messages: Messages, video: str, settings: dict[str, Any],
                 lock: threading.Lock) -> Iterator[tuple[str, bool]]:
    """(answer so far, finished) while ``model.chat`` generates in a worker thread; the last item is the answer
    ``chat`` returned. ``lock`` keeps one generation on the model at a time (an abandoned stream's worker runs to
    its end before the next starts)."""
    pieces: queue.Queue = queue.Queue()

    def work() -> None:
        with lock:
            try:
                pieces.put((True, model.chat(messages, video, stream=pieces.put, **settings)))
            except BaseException as err:  # handed to the page's thread, which re-raises it
                pieces.put((True, err))

    threading.Thread(target=work, name="vlmkit-webchat-generate", daemon=True).start()
    text = ""
    while True:
        item = pieces.get()
        if isinstance(item, str):
            text += item
            yield text, False
            continue
        result = item[1]
        if isinstance(result, BaseException):
            raise result
        yield result, True
        return


class WebChat:
    """The page's state and actions for one loaded model. ``examples``: label -> video path for the picker."""

    def __init__(self, model, system: Optional[str] = None, examples: Optional[dict[str, str]] = None):
        self.model, self.system = model, system
        self.examples = dict(examples or {})
        self.lock = threading.Lock()

    def defaults(self) -> dict[str, Any]:
        """The generation controls' starting values: the model's settings (the evaluator's unless ``vlmkit webchat``
        was given others)."""
        sampled = self.model.settings(do_sample=True)  # every key, temperature and top_p included
        return {"max_new_tokens": sampled["max_new_tokens"], "greedy": not self.model.generation["do_sample"],
                "temperature": sampled["temperature"], "top_p": sampled["top_p"],
                "repetition_penalty": sampled["repetition_penalty"]}

    def pick_example(self, label: Optional[str]) -> Optional[str]:
        """The video of an example picked from the list."""
        return self.examples.get(label) if label else None

    def show_video(self, video: Optional[str]) -> tuple[list[np.ndarray], str, Messages, Messages, str]:
        """A new video: its sampled frames and a new conversation. Returns (gallery, frames line, chat shown,
        conversation, status)."""
        if not video:
            return [], "", [], [], READY
        try:
            frames = sampled_frames(self.model, video)
        except VlmkitError as err:
            return [], "", [], [], f"Error: {err}"
        return frames, describe(frames), [], [], "Video ready: ask a question."

    def reset(self) -> tuple[Messages, Messages, str, str]:
        """Forget the conversation (the video stays). Returns (chat shown, conversation, question box, status)."""
        return [], [], "", "New conversation."

    def respond(self, question: str, video: Optional[str], conversation: Sequence[dict], max_new_tokens: float,
                greedy: bool, temperature: float, top_p: float,
                repetition_penalty: float) -> Iterator[tuple[Messages, Messages, str, str]]:
        """Answer ``question`` about ``video`` after ``conversation``, streaming. Yields (chat shown, conversation,
        question box, status); the conversation grows only when the answer is complete."""
        history = [dict(m) for m in conversation or []]
        question = (question or "").strip()
        if not question:
            yield history, history, "", "Type a question first."
            return
        if not video:
            yield history, history, question, "Upload or pick a video first."
            return
        try:
            settings = generation_from_page(max_new_tokens, greedy, temperature, top_p, repetition_penalty)
        except ConfigError as err:
            yield history, history, question, f"Error: {err}"
            return
        asked = [*history, {"role": "user", "content": question}]
        head = [{"role": "system", "content": self.system}] if self.system else []
        try:
            for text, finished in stream_reply(self.model, [*head, *asked], video, settings, self.lock):
                shown = [*asked, {"role": "assistant", "content": text}]
                if finished:
                    turns = sum(m["role"] == "user" for m in asked)
                    yield shown, shown, "", f"Answered (turn {turns})."
                else:
                    yield shown, history, "", "Answering..."
        except VlmkitError as err:
            yield history, history, question, f"Error: {err}"
