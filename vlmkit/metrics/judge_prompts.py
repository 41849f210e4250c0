"""Judge prompts of the Video-ChatGPT protocols, kept byte-exact because judge numbers depend on them.

Texts are the benchmark's own (Video-ChatGPT ``quantitative_evaluation``; VCGBench-Diverse reuses them),
including their quirks: the "is  a string" double space, the float example score 4.8 that contradicts the
"INTEGER" instruction, and VCGBench's malformed example ``{''score': 4.8}``.  Each prompt set has a version
hash recorded with every result, so a changed prompt can never pass for the published protocol.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class JudgePrompt:
    system: str
    user: str  # str.format template: {question} {answer} {pred} (+ {question2} {pred2} for consistency)

    def render(self, **fields: str) -> tuple[str, str]:
        return self.system, self.user.format(**fields)


def prompt_version(prompts: dict[str, JudgePrompt]) -> str:
    text = json.dumps({k: [p.system, p.user] for k, p in sorted(prompts.items())}, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


_HEAD = "Please evaluate the following video-based question-answer pair:\n\n"
_QAP = "Question: {question}\nCorrect Answer: {answer}\nPredicted Answer: {pred}\n\n"
_TAIL = ("DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. "
         "For example, your response should look like this: {{''score': 4.8}}.")


def _score_request(what: str, highest: str, value_phrase: str) -> str:
    return (f"Provide your evaluation only as a {what} score where the {what} score is an integer value between "
            f"0 and 5, with 5 indicating the highest level of {highest}. Please generate the response in the form "
            f"of a Python dictionary string with keys 'score', where its value is {value_phrase} in INTEGER, "
            f"not STRING.")


VIDEO_CHATGPT_QA = {"qa": JudgePrompt(
    system=("You are an intelligent chatbot designed for evaluating the correctness of generative outputs for "
            "question-answer pairs. Your task is to compare the predicted answer with the correct answer and "
            "determine if they match meaningfully. Here's how you can accomplish the task:------##INSTRUCTIONS: "
            "- Focus on the meaningful match between the predicted answer and the correct answer.\n"
            "- Consider synonyms or paraphrases as valid matches.\n"
            "- Evaluate the correctness of the prediction compared to the answer."),
    user=(_HEAD + _QAP + "Provide your evaluation only as a yes/no and score where the score is an integer value "
          "between 0 and 5, with 5 indicating the highest meaningful match. Please generate the response in the "
          "form of a Python dictionary string with keys 'pred' and 'score', where value of 'pred' is  a string of "
          "'yes' or 'no' and value of 'score' is in INTEGER, not STRING.DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR "
          "EXPLANATION. Only provide the Python dictionary string. For example, your response should look like "
          "this: {{'pred': 'yes', 'score': 4.8}}."),
)}

_SYS = ("You are an intelligent chatbot designed for evaluating the {what} of generative outputs for video-based "
        "question-answer pairs. Your task is to compare the predicted answer with the correct answer and {task} "
        "Here's how you can accomplish the task:------##INSTRUCTIONS: ")

VCGBENCH = {
    "correctness": JudgePrompt(
        system=_SYS.format(what="factual accuracy", task="determine if they are factually consistent.")
        + "- Focus on the factual consistency between the predicted answer and the correct answer. The predicted "
          "answer should not contain any misinterpretations or misinformation.\n"
          "- The predicted answer must be factually accurate and align with the video content.\n"
          "- Consider synonyms or paraphrases as valid matches.\n"
          "- Evaluate the factual accuracy of the prediction compared to the answer.",
        user=_HEAD + _QAP + _score_request("factual accuracy", "factual consistency",
                                           "the factual accuracy score") + _TAIL),
    "detail": JudgePrompt(
        system=_SYS.format(what="detail orientation", task="determine its level of detail, considering both "
                                                           "completeness and specificity.")
        + "- Check if the predicted answer covers all major points from the video. The response should not leave "
          "out any key aspects.\n"
          "- Evaluate whether the predicted answer includes specific details rather than just generic points. It "
          "should provide comprehensive information that is tied to specific elements of the video.\n"
          "- Consider synonyms or paraphrases as valid matches.\n"
          "- Provide a single evaluation score that reflects the level of detail orientation of the prediction, "
          "considering both completeness and specificity.",
        user=_HEAD + _QAP + _score_request("detail orientation", "detail orientation",
                                           "the detail orientation score") + _TAIL),
    "context": JudgePrompt(
        system=_SYS.format(what="contextual understanding", task="determine if the generated response aligns "
                                                                 "with the overall context of the video content.")
        + "- Evaluate whether the predicted answer aligns with the overall context of the video content. It should "
          "not provide information that is out of context or misaligned.\n"
          "- The predicted answer must capture the main themes and sentiments of the video.\n"
          "- Consider synonyms or paraphrases as valid matches.\n"
          "- Provide your evaluation of the contextual understanding of the prediction compared to the answer.",
        user=_HEAD + _QAP + _score_request("contextual understanding", "contextual understanding",
                                           "contextual understanding score") + _TAIL),
    "temporal": JudgePrompt(
        system=_SYS.format(what="temporal understanding", task="determine if they correctly reflect the temporal "
                                                               "sequence of events in the video content.")
        + "- Focus on the temporal consistency between the predicted answer and the correct answer. The predicted "
          "answer should correctly reflect the sequence of events or details as they are presented in the video "
          "content.\n"
          "- Consider synonyms or paraphrases as valid matches, but only if the temporal order is maintained.\n"
          "- Evaluate the temporal accuracy of the prediction compared to the answer.",
        user=_HEAD + _QAP + _score_request("temporal accuracy", "temporal consistency",
                                           "the temporal accuracy score") + _TAIL),
    "consistency": JudgePrompt(
        system=("You are an intelligent chatbot designed for evaluating the consistency of generative outputs for "
                "similar video-based question-answer pairs. You will be given two very similar questions, a common "
                "answer common to both the questions and predicted answers for the two questions .Your task is to "
                "compare the predicted answers for two very similar question, with a common correct answer and "
                "determine if they are consistent. Here's how you can accomplish the task:------##INSTRUCTIONS: "
                "- Focus on the consistency between the two predicted answers and the correct answer. Both predicted "
                "answers should correspond to the correct answer and to each other, and should not contain any "
                "contradictions or significant differences in the conveyed information.\n"
                "- Both predicted answers must be consistent with each other and the correct answer, in terms of "
                "the information they provide about the video content.\n"
                "- Consider synonyms or paraphrases as valid matches, but only if they maintain the consistency in "
                "the conveyed information.\n"
                "- Evaluate the consistency of the two predicted answers compared to the correct answer."),
        user=(_HEAD + "Question 1: {question}\nQuestion 2: {question2}\nCorrect Answer: {answer}\n"
              "Predicted Answer to Question 1: {pred}\nPredicted Answer to Question 2: {pred2}\n\n"
              + _score_request("consistency", "consistency", "the consistency score") + _TAIL)),
}
