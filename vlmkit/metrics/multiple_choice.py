"""Multiple-choice accuracy: per task type, overall (micro and macro), optional breakdowns and circular scoring.

Upstream protocols as configs (reference: benchmark_formats.md):
  MVBench (VideoChat2):  rule: mvbench, prediction_prefix: "(", first_line_only: true, overall: micro
  MVBench (lmms-eval):   rule: lmms_mvbench, empty: exclude, overall: micro
  Video-MME:             rule: videomme (or lmms_mcq), overall: micro, breakdown: [duration, domain, sub_category]
  MLVU M-Avg:            rule: mlvu (official) or lmms_mcq (lmms-eval), overall: macro
  VNBench:               rule: vnbench, circular_key: <name shared by the 4 shuffled tries>, overall: macro

An answer that names no option (empty, only the pre-filled prefix, punctuation, text matching no option) or from
which the rule reads no letter is wrong and counted in ``num_no_answer``, which sits next to ``accuracy`` in every
result.  ``credit_no_answer: true`` keeps an upstream rule's verdict on answers that name no option (the VideoChat2
notebook credits an empty generation) and reports ``num_no_answer_credited``; it is off by default.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from vlmkit.errors import DataError
from vlmkit.metrics.base import field, grouped, mean, require_nonempty
from vlmkit.metrics.mc_extract import RULES, Question, names_an_option
from vlmkit.mc_format import LETTERS, answer_letter, option_letters
from vlmkit.registry import METRICS

RuleName = Literal["vlmkit", "mvbench", "videogpt_plus", "mlvu", "videomme", "lmms_mcq", "vnbench", "lmms_mvbench"]


@METRICS.register("mc_accuracy", aliases=["multiple_choice"])
class MultipleChoiceAccuracy:
    """Accuracy of multiple-choice answers, with the letter-extraction rule of a chosen upstream protocol."""

    def __init__(self, rule: RuleName = "vlmkit", prediction_prefix: str = "", first_line_only: bool = False,
                 group_by: Optional[str] = "task_type", overall: Literal["micro", "macro"] = "micro",
                 breakdown: Optional[list[str]] = None, empty: Literal["wrong", "exclude"] = "wrong",
                 circular_key: Optional[str] = None, answer_key: str = "answer", options_key: str = "options",
                 num_options: Optional[int] = None, percent: bool = True, credit_no_answer: bool = False):
        """
        rule: letter extraction / checking rule (see ``vlmkit.metrics.mc_extract``).
        prediction_prefix: text put back in front of the generation (VideoChat2's pre-filled "(").
        first_line_only: keep only the first line of the generation (the VideoChat2 notebook does).
        group_by: prediction field naming the task type; per-group accuracies are reported.
        overall: "micro" = correct / total samples; "macro" = mean of the per-group accuracies.
        breakdown: more fields to report accuracy by (Video-MME: duration, domain, sub_category).
        empty: an empty prediction ("" exactly, as lmms-eval MVBench; whitespace is an answer) counts as wrong,
            or is left out of every denominator.
        circular_key: field shared by shuffled repeats of one question; the question counts as correct only
            if every repeat is (VNBench's 4 tries).
        num_options: option count when predictions carry no options list (letters A.. of that count).
        credit_no_answer: reproduce an upstream scorer that credits answers naming no option (off: they are
            wrong); the result then says so (``credit_no_answer: 1``) and counts ``num_no_answer_credited``.
        """
        if overall == "macro" and not group_by:
            raise DataError("mc_accuracy: overall 'macro' averages over groups, so set group_by")
        self.rule_name = rule
        self.rule = RULES[rule]
        self.prediction_prefix = prediction_prefix
        self.first_line_only = first_line_only
        self.group_by = group_by
        self.overall = overall
        self.breakdown = list(breakdown or [])
        self.empty = empty
        self.circular_key = circular_key
        self.answer_key = answer_key
        self.options_key = options_key
        self.num_options = num_options
        self.scale = 100.0 if percent else 1.0
        self.credit_no_answer = credit_no_answer

    def _question(self, pred: dict[str, Any]) -> Question:
        options = pred.get(self.options_key) or ()
        if options:
            letters = option_letters(len(options))
        elif self.num_options:
            letters = option_letters(self.num_options)
        else:
            letters = LETTERS[:4]
        answer = field(pred, self.answer_key, "mc_accuracy")
        gt = answer_letter(answer, options or [""] * len(letters))
        return Question(letters=letters, options=list(options), gt=gt)

    def generated_text(self, prediction: str) -> str:
        return prediction.strip().splitlines()[0] if self.first_line_only and prediction.strip() else prediction

    def prepared_text(self, prediction: str) -> str:
        return self.prediction_prefix + self.generated_text(prediction)

    def score_sample(self, pred: dict[str, Any]) -> dict[str, Any]:
        raw = str(field(pred, "prediction", "mc_accuracy"))
        question = self._question(pred)
        extracted, correct = self.rule(self.prepared_text(raw), question)
        # The guard reads the model's own words: a scorer-added prefix such as "(" names nothing.
        no_answer = not extracted or not names_an_option(self.generated_text(raw), question)
        credited = bool(correct) and no_answer and self.credit_no_answer
        return {"id": pred.get("id"), "extracted": extracted, "gt": question.gt,
                "correct": bool(correct) and (not no_answer or self.credit_no_answer),
                "no_answer": no_answer, "credited_no_answer": credited, "empty": raw == ""}

    def compute(self, predictions: list[dict[str, Any]]) -> dict[str, float]:
        require_nonempty(predictions, "mc_accuracy")
        units = []  # (record of the question, correct) -- a question is a circular group or one sample
        scored = [(pred, self.score_sample(pred)) for pred in predictions]
        if self.empty == "exclude":
            scored = [(p, s) for p, s in scored if not s["empty"]]
        if self.circular_key:
            groups = grouped((field(p, self.circular_key, "mc_accuracy"), (p, s)) for p, s in scored)
            units = [(members[0][0], all(s["correct"] for _, s in members)) for members in groups.values()]
        else:
            units = [(p, s["correct"]) for p, s in scored]
        if not units:
            raise DataError("mc_accuracy: every prediction is empty and empty='exclude' leaves nothing to score")
        result: dict[str, float] = {"accuracy": 0.0}  # set below: first, so num_no_answer sits beside it
        result["num_no_answer"] = float(sum(1 for _, s in scored if s["no_answer"]))
        if self.credit_no_answer:
            result["credit_no_answer"] = 1.0
            result["num_no_answer_credited"] = float(sum(1 for _, s in scored if s["credited_no_answer"]))
        result["num_samples"] = float(len(predictions))
        result["num_scored"] = float(len(units))
        result["accuracy_micro"] = self.scale * mean(float(c) for _, c in units)
        if self.group_by:
            per_group = grouped((field(p, self.group_by, "mc_accuracy"), float(c)) for p, c in units)
            for name, values in sorted(per_group.items()):
                result[f"accuracy/{name}"] = self.scale * mean(values)
            result["accuracy_macro"] = self.scale * mean(mean(v) for v in per_group.values())
        for key in self.breakdown:
            for value, values in sorted(grouped((field(p, key, "mc_accuracy"), float(c)) for p, c in units).items()):
                result[f"accuracy/{key}={value}"] = self.scale * mean(values)
        result["accuracy"] = result[f"accuracy_{self.overall}"]
        return result
