"""Multiple-choice video QA (MVBench, Video-MME, MLVU, VNBench): answer by generation or by option likelihood.

``mode: generate``: the model writes an answer; the ``mc_accuracy`` metric extracts the letter with the
configured upstream rule.  ``mode: loglik``: for each option the prompt is continued with
``option_format`` (default ``"({letter}) {option}"``) and the model's log-probabilities of those continuation
tokens are summed (``score: sum``) or averaged per token (``score: mean``); the best-scoring option wins and
is written as the prediction ``"(X)"``, which every extraction rule reads as X.  One forward per option.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Optional

import torch

from vlmkit.contracts import IGNORE_INDEX
from vlmkit.errors import DataError
from vlmkit.mc_format import option_letters
from vlmkit.models.prompting import pad_sequences
from vlmkit.registry import TASKS
from vlmkit.schema import ComponentList, Runtime
from vlmkit.tasks.generation import GenerationTask, batch_meta


def continuation_logprobs(logits: torch.Tensor, labels: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of log-probs, token count) per row over positions whose label is not -100.

    Causal LMs predict token t from position t-1 (shift by one); seq2seq decoders align logits with labels.
    """
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    mask = labels != IGNORE_INDEX
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    picked = logprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(dim=1), mask.sum(dim=1)


@TASKS.register("multiple_choice", aliases=["mc"])
class MultipleChoiceTask(GenerationTask):
    """Multiple-choice questions: generated letters or log-likelihood option scoring, then ``mc_accuracy``."""

    default_primary = "accuracy"

    def __init__(self, metrics: ComponentList("metrics") = ("mc_accuracy",),
                 mode: Literal["generate", "loglik"] = "generate", score: Literal["mean", "sum"] = "mean",
                 option_format: str = "({letter}) {option}", options_key: str = "options",
                 max_new_tokens: Optional[int] = None, primary: Optional[str] = None,
                 generation: Runtime[Optional[dict]] = None, output_dir: Runtime[Optional[str]] = None):
        super().__init__(metrics, max_new_tokens, primary, generation, output_dir)
        if "{option}" not in option_format and "{letter}" not in option_format:
            raise DataError(f"multiple_choice.option_format {option_format!r} names neither {{letter}} nor {{option}}")
        self.mode, self.score, self.option_format, self.options_key = mode, score, option_format, options_key

    def valid_step(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self.mode == "generate":
            return super().valid_step(model, batch)
        meta = batch_meta(batch, batch["input_ids"].shape[0])
        scores = self.option_scores(model, batch, meta)
        records = []
        for m, row in zip(meta, scores):
            best = max(range(len(row)), key=lambda k: row[k])
            records.append({**m, "prediction": f"({option_letters(len(row))[best]})", "option_scores": row})
        return records

    def headline(self, metrics: Mapping[str, Any]) -> Optional[tuple[str, float]]:
        """The primary metric, named for how the answer was read under ``loglik``: the likeliest option and a
        written answer are different measurements, so the overall summary never averages them together."""
        found = super().headline(metrics)
        if found is None or self.mode != "loglik":
            return found
        return f"{found[0]} (likeliest option)", found[1]

    # ------------------------------------------------------------------ log-likelihood scoring
    def _options(self, meta: list[dict[str, Any]]) -> list[list[str]]:
        options = []
        for m in meta:
            row = m.get(self.options_key)
            if not isinstance(row, list) or not row:
                raise DataError(f"multiple_choice (loglik): sample {m['id']!r} has no '{self.options_key}' list "
                                f"to score")
            options.append([str(o) for o in row])
        return options

    @torch.no_grad()
    def option_scores(self, model: torch.nn.Module, batch: Mapping[str, Any],
                      meta: list[dict[str, Any]]) -> list[list[float]]:
        """Per row, one score per option (higher is better)."""
        options = self._options(meta)
        continuations = [[self.option_format.format(letter=option_letters(len(row))[k], option=option)
                          for k, option in enumerate(row)] for row in options]
        scored = score_continuations(model, batch, continuations)
        return [[total / count if self.score == "mean" else total for total, count, _ in row] for row in scored]


@torch.no_grad()
def score_continuations(model: torch.nn.Module, batch: Mapping[str, Any],
                        continuations: list[list[str]]) -> list[list[tuple[float, int, bool]]]:
    """Per prompt row of ``batch`` (left-padded, as the evaluation datasets collate it) and per continuation text
    of that row: (sum of the continuation tokens' log-probs, token count, whether greedy decoding would have
    written exactly those tokens). One forward per continuation index, all rows that have one together; the
    lmms-eval plug-in's ``loglikelihood`` uses it too, so both score options the same way."""
    tokenizer = model.llm.tokenizer
    causal = not model.llm.is_encoder_decoder
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    mask = batch["attention_mask"].bool()
    prompts = [batch["input_ids"][r][mask[r]].tolist() for r in range(len(continuations))]
    scores: list[list[tuple[float, int, bool]]] = [[(0.0, 0, False)] * len(row) for row in continuations]
    for k in range(max(len(row) for row in continuations)):
        rows = [r for r, row in enumerate(continuations) if k < len(row)]
        conts = [tokenizer(continuations[r][k], add_special_tokens=False)["input_ids"] for r in rows]
        if any(not c for c in conts):
            raise DataError(f"continuation {k} of a sample tokenizes to nothing: "
                            f"{[continuations[r][k] for r, c in zip(rows, conts) if not c]}")
        pixels = [p[rows] for p in batch["pixel_values"]]
        if causal:  # prompt + continuation, right-padded: every row starts at position 0 as it would alone
            seqs = [prompts[r] + c for r, c in zip(rows, conts)]
            labels = [[IGNORE_INDEX] * len(prompts[r]) + c for r, c in zip(rows, conts)]
            input_ids = pad_sequences(seqs, pad)
            attention = pad_sequences([[1] * len(s) for s in seqs], 0)
        else:  # the prompt feeds the encoder, the continuation is the decoder's target
            input_ids = pad_sequences([prompts[r] for r in rows], pad)
            attention = pad_sequences([[1] * len(prompts[r]) for r in rows], 0)
            labels = conts
        labels = pad_sequences(labels, IGNORE_INDEX)
        device = batch["input_ids"].device
        out = model(input_ids=input_ids.to(device), attention_mask=attention.to(device), pixel_values=pixels,
                    labels=labels.to(device))
        labels = labels.to(out.logits.device)
        total, count = continuation_logprobs(out.logits, labels, causal)
        greedy = greedy_continuations(out.logits, labels, causal)
        for r, t, n, g in zip(rows, total.tolist(), count.tolist(), greedy.tolist()):
            scores[r][k] = (t, int(n), bool(g))
    return scores


def greedy_continuations(logits: torch.Tensor, labels: torch.Tensor, causal: bool) -> torch.Tensor:
    """Per row, whether every labelled token is the argmax of its position (aligned as ``continuation_logprobs``)."""
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    mask = labels != IGNORE_INDEX
    return ((logits.argmax(dim=-1) == labels) | ~mask).all(dim=1)
