"""Shared pieces of the benchmarks prompted lmms-eval's way with ``A. option`` lines and an answer index
(EgoSchema, NExT-QA): the prompt, the record, the index check."""
from __future__ import annotations

from vlmkit.contracts import VIDEO_PLACEHOLDER
from vlmkit.data.datasets.base import Record
from vlmkit.errors import DataError
from vlmkit.mc_format import LETTERS, format_options

POST_PROMPT = "\nAnswer with the option's letter from the given choices directly."


def dot_prompt(question: str, options: list[str], pre_prompt: str, post_prompt: str) -> str:
    """``{pre}{question}\\nA. o0\\nB. o1...{post}`` (lmms-eval's EgoSchema and NExT-QA multiple choice)."""
    return f"{pre_prompt}{question}\n{format_options(options, 'dot')}{post_prompt}"


def mc_sample(sample_id: str, media: str, question: str, options: list[str], index: int, prompt: str,
              **meta) -> Record:
    """A record whose answer is the option ``index``; the meta the ``mc_accuracy`` metric reads."""
    letter = LETTERS[index]
    return Record(sample_id, media, [{"from": "human", "value": f"{VIDEO_PLACEHOLDER}\n{prompt}"},
                                     {"from": "gpt", "value": letter}],
                  {"question": question, "options": options, "answer": letter, "answer_letter": letter,
                   "answer_text": options[index], **meta})


def answer_index(value, count: int, where: str) -> int:
    try:
        index = int(value)
    except (TypeError, ValueError):
        index = -1
    if isinstance(value, bool) or not 0 <= index < count or str(value).strip() != str(index):
        raise DataError(f"{where}: the answer must be an option index 0..{count - 1}, got {value!r}")
    return index
