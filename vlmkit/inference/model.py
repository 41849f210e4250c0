"""``vlmkit.load(run)``: a trained model, built as ``evaluate.py`` builds it, that answers questions about videos."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

import torch

from vlmkit.dtypes import precision_name
from vlmkit.errors import ConfigError
from vlmkit.inference.inputs import Video, build_batch, user_turns

if TYPE_CHECKING:
    from vlmkit.inference.answer_watch import AnswerWatch, Reply

def precision_of(dtype: Any) -> str:
    """The evaluator's ``precision`` name for ``dtype`` (None: fp32)."""
    if dtype is None:
        return "fp32"
    try:
        return precision_name(dtype)
    except ValueError as err:
        raise ConfigError("dtype", str(err)) from err


class InferenceModel:
    """A trained model with the evaluation data path: ``generate`` one question per video (batched over videos),
    ``chat`` over a multi-turn conversation. Generation settings default to the evaluator's
    (``generation_settings``); keyword arguments override them per call."""

    def __init__(self, trained: Any, device: Optional[str] = None, dtype: Any = None, backend: str = "auto",
                 **generation: Any):
        from vlmkit.data.datasets.base import SampleBuilder
        from vlmkit.runners import distributed
        from vlmkit.runners.context import PRECISIONS
        from vlmkit.runners.evaluator import generation_settings

        self.trained = trained
        self.device = distributed.pick_device(distributed.read_env(), device)
        self.precision = precision_of(dtype)
        self.autocast_dtype = PRECISIONS[self.precision]
        self.model = trained.model.to(self.device).eval()
        self.contract = self.model.data_contract()
        self.builder = SampleBuilder(self.contract, train=False, backend=backend)
        # an export's recorded settings, then the caller's, over the evaluator's defaults
        self.generation = generation_settings(**{**getattr(trained, "generation", {}), **generation})
        self._settings = generation_settings

    @property
    def checkpoint(self):
        return self.trained.checkpoint

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The generation arguments of a call: this model's, with ``overrides`` on top."""
        return self._settings(**{**self.generation, **overrides})

    # ------------------------------------------------------------------ answering
    def generate(self, video: Union[Video, Sequence[Video]], question: Union[str, Sequence[str]], *,
                 answer_prefix: str = "", fps: float = 1.0, stream: Optional[Callable[[str], None]] = None,
                 system: Optional[str] = None, **gen: Any) -> Union[str, list[str]]:
        """The answer to ``question`` about ``video`` (a file, a frame folder, or uint8 frames sampled at ``fps``).
        Lists of videos (and one question for all, or one per video) are answered as one batch: a list back.
        ``system``: a system message in front of every question (as a dataset's ``system_prompt``)."""
        many = isinstance(video, (list, tuple))
        videos = list(video) if many else [video]
        questions = [question] * len(videos) if isinstance(question, str) else list(question)
        if len(questions) != len(videos):
            raise ConfigError("question", f"{len(questions)} questions for {len(videos)} videos")
        lead = [{"role": "system", "content": system}] if system else []
        answers = self._answer([lead + [{"role": "user", "content": q}] for q in questions], videos, answer_prefix,
                               fps, stream, gen)
        return answers if many or not isinstance(question, str) else answers[0]

    def chat(self, messages: Sequence[dict], video: Video, *, fps: float = 1.0,
             stream: Optional[Callable[[str], None]] = None, **gen: Any) -> str:
        """The next assistant message of a conversation about ``video``: ``messages`` alternate
        ``{"role": "user" | "assistant", "content": ...}`` (a ``system`` message may come first) and end with
        the user's."""
        return self._answer([list(messages)], [video], "", fps, stream, gen)[0]

    def reply(self, messages: Sequence[dict], video: Video, *, fps: float = 1.0, stop: Sequence[str] = (),
              stream: Optional[Callable[[str], None]] = None, **gen: Any) -> Reply:
        """``chat`` with what an API server reports: the answer's ``Reply`` also holds the prompt's tokens (visual
        ones included), the generated tokens and why the answer ended. ``stop``: strings that end the answer
        besides the template's (generation stops there; the answer leaves them out)."""
        from vlmkit.inference.answer_watch import AnswerWatch

        watch = AnswerWatch(self.contract.tokenizer, self.model.template.stop_strings, stop)
        answer = self._answer([list(messages)], [video], "", fps, stream, gen, watch)[0]
        return watch.reply(answer, self.settings(**gen)["max_new_tokens"])

    def _answer(self, conversations: list[list[dict]], videos: list[Video], answer_prefix: str, fps: float,
                stream: Optional[Callable[[str], None]], gen: dict,
                watch: Optional[AnswerWatch] = None) -> list[str]:
        from vlmkit.runners.batches import move_to
        from vlmkit.runners.context import autocast
        from vlmkit.tasks.generation import generate_batch

        placeholder = self.contract.placeholders[0]
        batch = build_batch(self.builder, [user_turns(c, placeholder) for c in conversations], videos,
                            answer_prefix, fps)
        settings = self.settings(**gen)
        stops = list(self.model.template.stop_strings)
        if watch is not None:  # counts tokens, ends the answer at the caller's stop strings
            from transformers.generation.stopping_criteria import StoppingCriteriaList

            watch.prompt_tokens = int(batch["attention_mask"].sum())
            settings["stopping_criteria"] = StoppingCriteriaList([watch])
            stops += watch.stops
        if stream is not None:
            if len(videos) != 1 or settings["num_beams"] != 1:
                raise ConfigError("stream", "streaming answers one video at a time with num_beams 1")
            from vlmkit.inference.streaming import CallbackStreamer

            settings["streamer"] = CallbackStreamer(self.contract.tokenizer, stops, stream)
        with torch.no_grad(), autocast(self.device, self.autocast_dtype):
            answers = generate_batch(self.model, move_to(batch, self.device), settings)
        return [watch.cut(a) for a in answers] if watch is not None else answers


def load(run: str, device: Optional[str] = None, dtype: Any = None, *, trust_imports: bool = False,
         allow_changed_weights: bool = False, backend: str = "auto", **generation: Any) -> InferenceModel:
    """The model ``run`` trained (a run directory, its checkpoints folder, a self-contained checkpoint or a folder
    ``vlmkit export`` wrote, whose generation settings are the defaults), built
    as ``evaluate.py`` builds it (``build_trained_model``: same weights, frame sampling, processors, template).
    ``dtype``: the evaluator's ``precision`` (autocast; fp32 by default). ``generation``: defaults for every call
    (max_new_tokens, num_beams, do_sample, temperature, top_p, repetition_penalty)."""
    from vlmkit.assemble import build_trained_model

    trained = build_trained_model(run, trust_imports=trust_imports, allow_changed_weights=allow_changed_weights)
    return InferenceModel(trained, device=device, dtype=dtype, backend=backend, **generation)
