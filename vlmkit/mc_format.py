"""Multiple-choice prompt pieces: option letters, ``(A) ...`` lines, answer prefixes, ground-truth letters.

The VideoChat2/MVBench recipe formats a question as ``"Question: {q}\\nOptions:\\n(A) c0\\n(B) c1"`` and
pre-fills the assistant turn with an answer prefix ending in ``(``, so the model only has to write a letter;
the notebook then puts ``(`` back in front of the generated text before scoring.

A core module: datasets write questions with it and metrics and tasks read answers with it, and neither side may
import the other.
"""
from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Literal, Union

from vlmkit.errors import DataError

LETTERS = string.ascii_uppercase

# Assistant-turn pre-fills of the upstream recipes (reference: benchmark_formats.md 1.3, 5.3).
ANSWER_PREFIXES = {
    "mvbench": "Best option:(",        # VideoChat2 MVBench notebook
    "mvbench_spaced": "Best option: (",  # lmms-eval mlvu_dev post_prompt, the common spelling
    "mlvu": "Best Option: (",            # MLVU choice_bench.py
}
DEFAULT_ANSWER_PREFIX = ANSWER_PREFIXES["mvbench_spaced"]


def option_letters(count: int) -> str:
    if not 1 <= count <= len(LETTERS):
        raise DataError(f"a multiple-choice question needs 1..26 options, got {count}")
    return LETTERS[:count]


def format_options(options: Sequence[str], style: Literal["paren", "dot"] = "paren") -> str:
    """``(A) first\\n(B) second`` (``paren``, VideoChat2/MVBench/MLVU) or ``A. first`` (``dot``, Video-MME/VNBench)."""
    letters = option_letters(len(options))
    if style == "paren":
        return "\n".join(f"({letter}) {option}" for letter, option in zip(letters, options))
    if style == "dot":
        return "\n".join(f"{letter}. {option}" for letter, option in zip(letters, options))
    raise ValueError(f"unknown option style {style!r}; accepted: 'paren', 'dot'")


def format_question(question: str, options: Sequence[str], style: Literal["paren", "dot"] = "paren",
                    question_last: bool = False) -> str:
    """VideoChat2's ``qa_template``: ``Question: {q}\\nOptions:\\n(A) ...`` without a trailing newline.
    ``question_last``: ``Options:\\n(A) ...\\nQuestion: {q}``, the question right before the answer, for a
    model too shallow to carry the question's words past the option list (the CPU demo's)."""
    listed = format_options(options, style)
    if question_last:
        return f"Options:\n{listed}\nQuestion: {question}".rstrip()
    return f"Question: {question}\nOptions:\n{listed}".rstrip()


def answer_letter(answer: Union[str, int], options: Sequence[str] = ()) -> str:
    """The ground-truth letter from any upstream answer form.

    Accepted: an option index (VNBench's 0..3), a letter (``"C"``), a ``"(C) text"`` string (VideoChat2 GT),
    ``"C. text"``, or the text of the correct option (MVBench and MLVU store the option text).
    """
    count = len(options) if options else len(LETTERS)
    letters = LETTERS[:count]
    if isinstance(answer, int) and not isinstance(answer, bool):
        if 0 <= answer < count:
            return letters[answer]
        raise DataError(f"answer index {answer} is outside the {count} options")
    text = str(answer).strip()
    if len(text) == 1 and text.upper() in letters:
        return text.upper()
    if len(text) >= 3 and text[0] == "(" and text[2] == ")" and text[1].upper() in letters:
        return text[1].upper()
    if len(text) >= 2 and text[1] == "." and text[0] in letters and (len(text) == 2 or text[2] == " "):
        return text[0]
    matches = [letters[i] for i, option in enumerate(options) if str(option).strip() == text]
    if len(matches) == 1:
        return matches[0]
    raise DataError(f"cannot tell which option the answer {answer!r} is: it is not a letter, '(X) text', "
                    f"an index or exactly one of the options {list(options)}")


def gt_option_string(letter: str, options: Sequence[str]) -> str:
    """VideoChat2's ground-truth string ``"(B) option text"``."""
    index = LETTERS.index(letter)
    return f"({letter}) {options[index]}"
