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
  ``lmms_mcq``       modelled on lmms-eval ``extract_mcq_answer``: candidates ranked by format -- start 10,
                     end 9, phrase ("answer is", "答案是", "정답은", "答えは") 7, "(A)" 6, "A." 5, "A:" 4, "A)" 3,
                     "A " 2, any standalone letter 0; the last occurrence of the best format wins.
  ``vnbench``        VideoNIAH ``eval.py``: text before the first "."; the first of A, B, C, D (in that order)
                     that occurs in it as a substring.
  ``lmms_mvbench``   lmms-eval ``mcq_acc``: "^X. text" gives X; else punctuation, quotes and brackets are
                     removed, the text lower-cased, and the first standalone letter a-e taken.
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
    if re.search(rf"(?<![A-Za-z])[{letters}](?![A-Za-z])", text, flags=re.IGNORECASE):
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


_LMMS_FORMATS = (
    (10, r"^\s*[(\[]?([{L}])[)\]]?(?=[\s.:,)]|$)"),
    (9, r"(?:^|[\s(\[])([{L}])[)\]]?[\s.]*$"),
    (7, r"(?:answer\s+is|answer:|option\s+is|choice\s+is|答案是|答案为|정답은|答えは)\s*[(\[]?([{L}])(?![A-Za-z])"),
    (6, r"\(([{L}])\)"),
    (5, r"\b([{L}])\."),
    (4, r"\b([{L}]):"),
    (3, r"\b([{L}])\)"),
    (2, r"\b([{L}])\s"),
    (0, r"\b([{L}])\b"),
)


def extract_lmms_mcq(text: str, q: Question) -> str:
    for _, pattern in _LMMS_FORMATS:
        found = re.findall(pattern.replace("{L}", q.letters), text, flags=re.IGNORECASE if "answer" in pattern else 0)
        if found:
            return found[-1].upper()
    return ""


def extract_vnbench(text: str, q: Question) -> str:
    head = text.split(".")[0]
    return next((letter for letter in "ABCD" if letter in head), "")


def extract_lmms_mvbench(text: str, q: Question) -> str:
    dotted = re.match(r"^([A-E])\.\s*(.+)$", text.strip(), flags=re.DOTALL)
    if dotted:
        return dotted.group(1)
    cleaned = re.sub(r"[\"'()\[\]]", " ", text)
    cleaned = cleaned.translate(str.maketrans({c: " " for c in string.punctuation})).lower()
    found = re.search(r"\b([a-e])\b", cleaned)
    return found.group(1).upper() if found else ""


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
    "lmms_mvbench": _by_extraction(extract_lmms_mvbench),
}
