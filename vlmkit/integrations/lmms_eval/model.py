"""The lmms-eval model class for a vlmkit run (registered as ``vlmkit``; see the package docstring).

Each request's video comes from the task's ``doc_to_visual`` (one video file, frame folder or frame array per
document); the request's context is the user's message. The model is ``vlmkit.load(run)``: the evaluator's weights,
frame sampling, processors, chat template and generation settings, so a question asked through lmms-eval is
asked exactly as ``evaluate.py`` asks it. What a vlmkit dataset adds around the question is given as model args:
``system_prompt`` (text, or a file holding it: the system turn, e.g. MVBench's) and ``answer_prefix`` (text the
answer starts with, e.g. ``Best option:(``).

- ``generate_until``: requests grouped by their generation settings (lmms-eval's ``Collator``) and answered
  ``batch_size`` at a time; the task's ``max_new_tokens`` / ``temperature`` / ``do_sample`` / ``top_p`` /
  ``num_beams`` / ``repetition_penalty`` override the run's, and the answer is cut at the first ``until`` string.
- ``loglikelihood``: the continuations of one document share its prompt; they are scored by
  ``vlmkit.tasks.multiple_choice.score_continuations``, the computation of vlmkit's likeliest-option scoring
  (log-probs of the continuation's tokens appended to the prompt), with lmms-eval's greedy flag. The value
  returned is the continuation's *negative* log-likelihood, summed over its tokens (``score=sum``, vlmkit's
  ``score: sum``) or averaged (``score=mean``, vlmkit's ``score: mean`` and lmms-eval's LLaVA models): lmms-eval
  0.7.3's multiple-choice metrics pick the option with the *lowest* value (``np.argmin``, because its own models
  return losses; lmms-eval issue #370), so the likeliest option must have the lowest number.

Several processes (``accelerate launch -m lmms_eval ...``): each holds the model on its own device and lmms-eval
splits the documents by ``rank`` / ``world_size``, read from accelerate.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Optional

import torch
from lmms_eval import utils
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from vlmkit.errors import ConfigError, DataError
from vlmkit.inference import load
from vlmkit.inference.inputs import build_batch, user_turns
from vlmkit.runners.batches import move_to
from vlmkit.runners.context import autocast
from vlmkit.runners.evaluator import GENERATION_KEYS
from vlmkit.tasks.multiple_choice import score_continuations


def passed_through(result: tuple[float, bool]) -> Any:
    """A (negative log-likelihood, greedy) pair, as lmms-eval's evaluator hands it to the task unchanged. 0.7.3's
    ``unwrap_generation_output`` turns every model output that is not text, a ``(text, counts)`` pair or a
    ``GenerationResult`` into ``str(output)``, so a bare tuple reaches ``process_results`` as the string
    ``"(-1.2, False)"`` and multiple-choice tasks fail (``lls, is_greedy = zip(*results)``); the pair inside a
    ``GenerationResult`` is passed through as is."""
    try:
        from lmms_eval.api.instance import GenerationResult, unwrap_generation_output
    except ImportError:  # an lmms-eval without the unwrapping takes the pair itself
        return result
    return GenerationResult(text=result) if unwrap_generation_output(result)[0] != result else result


class VlmkitLmms(lmms):
    """A vlmkit run as an lmms-eval model (``--model vlmkit --model_args run=RUN[,key=value...]``)."""

    is_simple = True

    def __init__(self, run: str, device: Optional[str] = None, dtype: Optional[str] = None, batch_size: Any = 1,
                 max_batch_size: Optional[int] = None, system_prompt: str = "", answer_prefix: str = "",
                 fps: float = 1.0, score: str = "sum", trust_imports: bool = False, **generation: Any):
        super().__init__()
        try:
            self.batch_size = int(batch_size)
        except (TypeError, ValueError):
            raise ConfigError("batch_size", f"the vlmkit lmms-eval model takes a whole number, got {batch_size!r} "
                                            f"(no 'auto')") from None
        if self.batch_size < 1:
            raise ConfigError("batch_size", f"must be at least 1, got {self.batch_size}")
        if score not in ("sum", "mean"):
            raise ConfigError("score", f"the continuation's negative log-likelihood is summed ('sum') or averaged "
                                       f"per token ('mean'), got {score!r}")
        self.score = score
        device = self._place(device)
        self.model = load(str(run), device=device, dtype=dtype, trust_imports=trust_imports, **generation)
        self.system_prompt = self._resolve_system_prompt(str(system_prompt)) if system_prompt else ""
        self.answer_prefix, self.fps = str(answer_prefix), float(fps)

    def _place(self, device: Optional[str]) -> Optional[str]:
        """rank / world size from accelerate when launched on several processes; each takes its own GPU."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return device
        from accelerate import Accelerator

        self.accelerator = Accelerator()
        self._rank, self._world_size = self.accelerator.process_index, self.accelerator.num_processes
        return device if device not in (None, "cuda") else str(self.accelerator.device)

    # ------------------------------------------------------------------ request pieces
    def _video(self, doc_to_visual: Any, doc_id: int, task: str, split: str) -> Any:
        """The one video of a document: a file or frame folder path, or frames."""
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if callable(doc_to_visual) else None
        if isinstance(visuals, (list, tuple)) and len(visuals) == 1:
            visuals = visuals[0]
        if isinstance(visuals, (str, os.PathLike, torch.Tensor)) or hasattr(visuals, "__array__"):
            return visuals
        raise DataError(f"lmms-eval task {task!r} document {doc_id}: doc_to_visual gave {type(visuals).__name__} "
                        f"{visuals!r:.200}; the vlmkit model takes one video per document (a file or frame folder "
                        f"path, or a uint8 frame array), as a one-item list or alone")

    def _conversation(self, context: str) -> list[dict]:
        lead = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return lead + [{"role": "user", "content": context}]

    @staticmethod
    def _generation(gen_kwargs: dict) -> tuple[dict, list[str]]:
        """(vlmkit generation overrides, stop strings) from a task's generation_kwargs."""
        given = dict(gen_kwargs or {})
        until = given.pop("until", [])
        until = [until] if isinstance(until, str) else list(until or [])
        settings = {key: given[key] for key in GENERATION_KEYS if given.get(key) is not None}
        if "temperature" in settings and float(settings["temperature"]) == 0:  # lmms-eval's greedy
            settings.pop("temperature")
            settings["do_sample"] = False
        return settings, [u for u in until if u]

    # ------------------------------------------------------------------ lmms-eval's entry points
    def generate_until(self, requests: list[Instance]) -> list[str]:
        tokenizer = self.model.contract.tokenizer
        collator = utils.Collator([r.args for r in requests], lambda x: (-len(tokenizer.encode(x[0])), x[0]),
                                  grouping=True)
        answers: list[str] = []
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc="vlmkit answering")
        for chunk in collator.get_batched(n=self.batch_size, batch_fn=None):
            contexts, gen_kwargs, doc_to_visual, doc_ids, tasks, splits = zip(*chunk)
            videos = [self._video(v, d, t, s) for v, d, t, s in zip(doc_to_visual, doc_ids, tasks, splits)]
            settings, until = self._generation(gen_kwargs[0])
            replies = self.model.generate(videos, list(contexts), answer_prefix=self.answer_prefix, fps=self.fps,
                                          system=self.system_prompt or None, **settings)
            for context, reply in zip(contexts, replies):
                for stop in until:
                    reply = reply.split(stop)[0]
                answers.append(reply)
                self.cache_hook.add_partial("generate_until", (context, gen_kwargs[0]), reply)
            bar.update(len(chunk))
        bar.close()
        return collator.get_original(answers)

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        # one prompt row per document and context, holding all its continuations (a question's options)
        rows: dict[tuple, list[int]] = {}
        continuations: list[str] = []
        for i, request in enumerate(requests):
            if len(request.args) != 6:
                raise DataError(f"lmms-eval request {request.task_name}/{request.doc_id} has no video "
                                f"(args {request.args!r:.120}); the vlmkit model scores continuations of a prompt "
                                f"about a video (acc_mutual_info's unconditional requests are not supported)")
            context, target, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            continuations.append(target(doc) if callable(target) else str(target))
            rows.setdefault((context, doc_to_visual, doc_id, task, split), []).append(i)
        results: list[Optional[tuple[float, bool]]] = [None] * len(requests)
        keys = list(rows)
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc="vlmkit scoring")
        for start in range(0, len(keys), self.batch_size):
            chunk = keys[start:start + self.batch_size]
            scored = self._score([(key[0], self._video(*key[1:])) for key in chunk],
                                 [[continuations[i] for i in rows[key]] for key in chunk])
            for key, row in zip(chunk, scored):
                for i, (total, count, greedy) in zip(rows[key], row):
                    results[i] = (-(total / count if self.score == "mean" else total), greedy)
                    self.cache_hook.add_partial("loglikelihood", requests[i].args[:2], results[i])
                bar.update(len(row))
        bar.close()
        return [passed_through(r) for r in results]

    def _score(self, prompts: Sequence[tuple[str, Any]], continuations: list[list[str]]):
        model = self.model
        placeholder = model.contract.placeholders[0]
        batch = build_batch(model.builder, [user_turns(self._conversation(c), placeholder) for c, _ in prompts],
                            [v for _, v in prompts], self.answer_prefix, self.fps)
        with torch.no_grad(), autocast(model.device, model.autocast_dtype):
            return score_continuations(model.model, move_to(batch, model.device), continuations)

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("the vlmkit lmms-eval model answers generate_until and loglikelihood tasks; "
                                  "multi-round tasks are not supported")
