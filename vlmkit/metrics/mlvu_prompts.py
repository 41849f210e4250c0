"""Judge prompts of MLVU's generation tasks (G-Avg), written for vlmkit after the benchmark's description
(reference: benchmark_formats.md 5.3): not MLVU's own texts, so numbers are comparable across vlmkit runs but
not byte-for-byte with MLVU's GPT-4 scripts.  Each task asks for two 1-5 scores and their sum, as a dict at the
end of the reply; ``SCORE_KEYS`` names the two score keys per task (MLVU's own key names).
"""
from __future__ import annotations

from vlmkit.metrics.judge_prompts import JudgePrompt

SCORE_KEYS = {"sub_scene": ("score_accuracy", "score_relevance"),
              "summary": ("score_completeness", "score_reliability")}

_ENDING = ("Reason briefly about each score first. Then end your reply with a Python dictionary holding the two "
           "scores and their sum, and nothing after it: {{'{a}': <1-5>, '{b}': <1-5>, 'total_score': <sum>}}")

MLVU_GENERATION = {
    "sub_scene": JudgePrompt(
        system=("You grade answers to a video sub-scene captioning question. You see the question, the scoring "
                "points a correct description of that scene must contain, and the respondent's answer. Give two "
                "scores.\n"
                "ACCURACY (1-5): grade every scoring point on its own: 5 when the answer states it correctly, 3 when "
                "the answer mentions related content that is only partly right, 1 when the answer misses it. The "
                "accuracy score is the mean of these per-point grades (it may be fractional).\n"
                "RELEVANCE (1-5): how closely the answer keeps to what the question asks, whatever its correctness: "
                "1 entirely off-topic; 2 partly related with much irrelevant content; 3 mostly on-topic but the "
                "respondent sounds unsure; 4 on-topic and confident; 5 fully focused on the question, with no "
                "irrelevant content, and certain.\n"
                + _ENDING.format(a="score_accuracy", b="score_relevance")),
        user="Question: {question}\nScoring points:\n{scoring_points}\nRespondent's answer: {pred}\n\n"
             "Score the answer as instructed and finish with the dictionary."),
    "summary": JudgePrompt(
        system=("You grade video summaries against a reference summary written by a person who watched the video. "
                "Give two scores.\n"
                "COMPLETENESS (1-5): how much of the reference's main content and key points the summary covers: "
                "1 almost none; 2 some, many missing; 3 most of them; 4 nearly all; 5 all of them.\n"
                "RELIABILITY (1-5): how correct and clear the summary is. Factual errors, misleading statements "
                "and contradictions with the reference lower it; details the reference lacks are not penalised "
                "when they are plausible and do not conflict with it. 1 many errors, confusing; 2 several errors "
                "or contradictions; 3 mostly accurate, minor errors; 4 negligible inaccuracies, clear; 5 fully "
                "accurate and clear.\n"
                + _ENDING.format(a="score_completeness", b="score_reliability")),
        user="Question: {question}\nReference summary: {answer}\nRespondent's summary: {pred}\n\n"
             "Score the summary as instructed and finish with the dictionary."),
}
