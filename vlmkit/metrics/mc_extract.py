"""Letter extraction and answer checking for multiple-choice predictions.

Every rule maps (prediction text, the question's letters, options, ground-truth letter) to
(extracted letter or token, correct).  ``vlmkit`` is ours; the others reproduce upstream scorers
(reference: benchmark_formats.md), quirks included unless a guard is noted.

``vlmkit`` (default), in order, first hit wins:
  1. Lead-in phrases are removed from the start: "answer", "the (best|correct|final) answer/option/choice",
     "best option", with optional "is" and ":" (so "Best option: (B)" and "The answer is C" reduce to the letter).
  2. A letter at the start: "(B)", "(b)", "B", "B.", "B)", "B:", "B,", "C because..." -- but "A" or "I"
     followed by a lower-case word is the English word, so "A person..." is NOT the letter A; a lower-case
     letter counts only alone ("b", "b.", "b)").
  3. An explicit phrase anywhere: "answer is (C)", "option C", "answer: C".
  4. Parenthesised upper-case letters anywhere, if they name exactly one letter ("I pick (C) here").
  5. The text of exactly one option contained in the prediction (case- and punctuation-insensitive).
  Otherwise "" (counted wrong).  Only letters of the question's options count.

Every rule is applied behind one guard (``names_an_option``, used by ``mc_accuracy``): a generation that names
no option -- no option letter standing alone (case-insensitive) and no option text -- is scored wrong and counted
as "no answer", whatever the rule says.  Some upstream checks credit such answers (VideoChat2's substring test
passes for an empty first token, and for the pre-filled "(" alone); ``mc_accuracy(credit_no_answer=True)``
reproduces that and reports how many answers it credited.

Upstream rules:
  ``mvbench``        VideoChat2 notebook ``check_ans``: lower-case, first whitespace token of the prediction vs
                     the GT token "(b)": correct if token-without-dots is a substring of "(b)" or "(b)" of the
                     token -- so an empty token, "." or "(" is a hit upstream (the metric's guard stops it).
                     Pair it with ``prediction_prefix: "("`` as the notebook prepends "(" to the generation.
  ``videogpt_plus``  the same check on the SECOND token (VideoGPT+'s preds start with a prefix word); fewer
                     than two tokens is wrong.
  ``mlvu``           MLVU ``check_ans``: the character just before the first ")" (else the whole prediction)
                     must equal the GT letter, case-sensitively.  Guard: ")" at position 0 gives "".
  ``videomme``       lmms-eval's ``extract_characters_regex``: remove "The best answer is", "The correct answer
                     is", "The answer is", "The answer" anywhere; more than 10 words and no capital option
                     letter -> ""; else the first capital option letter anywhere.
  ``lmms_mcq``       lmms-eval 0.7.3 ``extract_mcq_answer``, exactly: the ends lose ",.!?;:'\"" (one strip each, in
                     that order); candidates ranked by format -- a letter starting (10) or ending (9) the text, not
                     beside a letter; a letter anywhere after an answer phrase ("answer is", "I choose", "选",
                     "答案是", ...) 7; "(A)" 6, "A." 5, "A:" 4, "A)" 3, "A " 2; only if none, any "A" at all 0. The
                     best format wins, then the latest position.
  ``vnbench``        VideoNIAH ``eval.py``: text before the first "."; the first of A, B, C, D (in that order)
                     that occurs in it as a substring.
  ``lmms_mvbench``   lmms-eval 0.7.3 ``mcq_acc``, exactly: "X. text" (X in A-E, either case, the text on one
                     line) gives X; else newlines and tabs become spaces; each of ;/[]"{}()=+\\_-><@`,?! is deleted
                     if it touches a space anywhere in the text or the text holds a "1,000"-style number, otherwise
                     replaced by a space; up to 32 periods not followed by a digit are deleted; and the first
                     standalone letter a-e is taken ("1.B", "B.The" and "(B)1,000" name no letter; "A/B /C" is C).
                     Correct iff upstream's processed prediction equals its processed ground truth.
"""
from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    letters: str                 # valid option letters, e.g. "ABCD"
    options: Sequence[str] = ()  # option texts, when known
    gt: str = ""                 # ground-truth letter


Rule = Callable[[str, Question], tuple[str, bool]]


def _normalise(text: str) -> str:
    text = text.lower().translate(str.maketrans({c: " " for c in string.punctuation}))
    return " ".join(text.split())


# ---------------------------------------------------------------- vlmkit
_LEAD_IN = re.compile(
    r"^\s*(?:(?:the\s+)?(?:best\s+|correct\s+|final\s+|right\s+)?(?:answer|option|choice)(?:\s+is)?\s*:?\s*)+",
    re.IGNORECASE)


def extract_vlmkit(text: str, q: Question) -> str:
    valid = q.letters
    body = _LEAD_IN.sub("", text.strip(), count=1)
    start = re.match(r"\(\s*([A-Za-z])\s*\)", body)
    if start and start.group(1).upper() in valid:
        return start.group(1).upper()
    start = re.match(r"([A-Z])(?:$|[.):,;\]]|\s+(?!(?<=[AI]\s)[a-z]))", body)
    if start and start.group(1) in valid:
        return start.group(1)
    alone = re.fullmatch(r"\(?([a-z])[.):]?", body)
    if alone and alone.group(1).upper() in valid:
        return alone.group(1).upper()
    phrase = re.search(r"\b(?:answer|option|choice)\s*(?:is\s*)?:?\s*\(?([A-Z])\)?(?![A-Za-z])", text,
                       re.IGNORECASE)
    if phrase and phrase.group(1).upper() in valid and (phrase.group(1).isupper() or "(" in phrase.group(0)):
        return phrase.group(1).upper()
    bracketed = {m for m in re.findall(r"\(([A-Z])\)", text) if m in valid}
    if len(bracketed) == 1:
        return bracketed.pop()
    if q.options:
        said = f" {_normalise(text)} "
        hits = [letter for letter, option in zip(valid, q.options)
                if _normalise(str(option)) and f" {_normalise(str(option))} " in said]
        if len(hits) == 1:
            return hits[0]
    return ""


def names_an_option(text: str, q: Question) -> bool:
    """Whether ``text`` (the model's own words, before any scorer-added prefix) names at least one option: an
    option letter standing alone, in either case ("b", "(B)", "B.", "答案是B"), or the text of an option."""
    letters = re.escape(q.letters)
    # Case-insensitive for the letter only: ignoring case, [A-Za-z] would also match "İ" and the Kelvin sign.
    if re.search(rf"(?<![A-Za-z])(?i:[{letters}])(?![A-Za-z])", text):
        return True
    said = f" {_normalise(text)} "
    return any(_normalise(str(option)) and f" {_normalise(str(option))} " in said for option in q.options)


# ---------------------------------------------------------------- upstream variants
def _videochat2_check(token: str, gt: str) -> bool:
    gt_option = f"({gt.lower()})"
    return token.replace(".", "") in gt_option or gt_option in token  # upstream, "" in "(b)" included


def rule_mvbench(text: str, q: Question) -> tuple[str, bool]:
    tokens = text.lower().split()
    token = tokens[0] if tokens else ""
    return token, _videochat2_check(token, q.gt)


def rule_videogpt_plus(text: str, q: Question) -> tuple[str, bool]:
    tokens = text.lower().split()
    if len(tokens) < 2:
        return "", False  # upstream indexes pred_list[1] and would crash
    return tokens[1], _videochat2_check(tokens[1], q.gt)


def rule_mlvu(text: str, q: Question) -> tuple[str, bool]:
    close = text.find(")")
    letter = text if close < 0 else (text[close - 1] if close > 0 else "")
    return letter, letter == q.gt


def extract_videomme(text: str, q: Question) -> str:
    body = text.strip()
    for prefix in ("The best answer is", "The correct answer is", "The answer is", "The answer"):
        body = body.replace(prefix, "")
    letters = f"[{q.letters}]"
    if len(body.split()) > 10 and not re.search(letters, body):
        return ""
    found = re.search(letters, body)
    return found.group(0) if found else ""


# lmms-eval ``_task_utils/mcq_extract.extract_mcq_answer`` (0.7.3). Phrases are matched lower-cased; a letter is
# searched (case-sensitively) anywhere after a phrase's first occurrence, inside words too.
_LMMS_MCQ_PHRASES = (
    "the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
    "best answer is", "the correct option is", "correct option is", "the best option is", "best option is",
    "the choice is", "choice is", "the correct choice is", "correct choice is", "i choose", "i select", "i pick",
    "my answer is", "my choice is", "옵션", "정답은", "답은", "답:", "答案是", "答案为", "选", "答えは")
# (priority, how the letter is written); the highest priority wins, then the latest position.
_LMMS_MCQ_SHAPES = ((6, "({})"), (5, "{}."), (4, "{}:"), (3, "{})"), (2, "{} "))


def extract_lmms_mcq(text: str, q: Question) -> str:
    if not text.strip():
        return ""
    choices = list(q.letters) or list("ABCDEFGH")
    body = text.strip()
    for char in ",.!?;:'\"":  # one pass each, in this order: ".,B," ends as ",B"
        body = body.strip(char)
    padded = f" {body} "
    found: list[tuple[int, int, str]] = []  # (priority, position, letter)
    for priority, shape in _LMMS_MCQ_SHAPES:
        found += [(priority, padded.rfind(shape.format(c)), c) for c in choices if shape.format(c) in padded]
    lowered = padded.lower()  # may be longer than padded ("İ"); upstream indexes padded with it all the same
    for phrase in _LMMS_MCQ_PHRASES:
        at = lowered.find(phrase)
        if at >= 0:
            hits = ((padded.find(c, at + len(phrase)), c) for c in choices)
            found += [(7, pos, c) for pos, c in hits if pos >= 0]
    core = padded.strip()
    found += [(10, 0, c) for c in choices if core.startswith(c) and (len(core) == 1 or not core[1].isalpha())]
    found += [(9, len(padded) - 1, c) for c in choices
              if core.endswith(c) and (len(core) == 1 or not core[-2].isalpha())]
    if not found:
        found = [(0, padded.rfind(c), c) for c in choices if c in padded]
    return max(found)[2] if found else ""  # distinct letters never share (priority, position)


def extract_vnbench(text: str, q: Question) -> str:
    head = text.split(".")[0]
    return next((letter for letter in "ABCD" if letter in head), "")


# lmms-eval ``mvbench/utils.mcq_acc`` (0.7.3): both the prediction and the ground-truth letter go through
# ``_lmms_mvbench_process`` and the sample scores 1 iff the results are equal.
_MVB_DOTTED = re.compile(r"^([A-E])\.\s*(.+)$", re.IGNORECASE)  # "b. text", the text on one line
_MVB_PUNCT = ';/[]"{}()=+\\_-><@`,?!'
_MVB_LETTER = re.compile(r"\b([A-E])\b", re.IGNORECASE)


def _lmms_mvbench_process(text: str) -> str:
    dotted = _MVB_DOTTED.match(text.strip())
    if dotted:
        return dotted.group(1).upper()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    # A punctuation mark is deleted wherever it occurs if it touches a space somewhere in the text, or if the
    # text holds a digit-comma-digit ("1,000"); otherwise each occurrence becomes a space.
    thousands = re.search(r"\d,\d", text) is not None
    text = text.translate({ord(p): "" if thousands or f"{p} " in text or f" {p}" in text else " "
                           for p in _MVB_PUNCT})
    # Periods not followed by a digit are deleted, at most 32 of them (upstream passes re.UNICODE as count).
    text = re.sub(r"\.(?!\d)", "", text, count=32)
    text = text.strip("'").strip('"').strip(")").strip("(").strip().lower()
    letter = _MVB_LETTER.search(text)
    return letter.group(1).upper() if letter else text


def rule_lmms_mvbench(text: str, q: Question) -> tuple[str, bool]:
    """The letter A-E that upstream reads ("" if none); correct iff upstream's processed texts are equal."""
    processed = _lmms_mvbench_process(text)
    correct = bool(q.gt) and processed == _lmms_mvbench_process(q.gt)
    letter = processed if len(processed) == 1 and processed in "ABCDE" else ""
    return (q.gt if correct else letter), correct  # a ground truth past E is upstream's lower-cased text


def _by_extraction(extract: Callable[[str, Question], str]) -> Rule:
    def rule(text: str, q: Question) -> tuple[str, bool]:
        letter = extract(text, q)
        return letter, bool(letter) and letter == q.gt

    rule.__doc__ = extract.__doc__
    return rule


RULES: dict[str, Rule] = {
    "vlmkit": _by_extraction(extract_vlmkit),
    "mvbench": rule_mvbench,
    "videogpt_plus": rule_videogpt_plus,
    "mlvu": rule_mlvu,
    "videomme": _by_extraction(extract_videomme),
    "lmms_mcq": _by_extraction(extract_lmms_mcq),
    "vnbench": _by_extraction(extract_vnbench),
    "lmms_mvbench": rule_lmms_mvbench,
}
