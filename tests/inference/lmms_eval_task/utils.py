"""Functions of the tiny lmms-eval tasks (vlmkit_tiny_mc_gen / _ll): the synthetic test_mc.json questions, asked
with the prompt vlmkit's multiple_choice dataset writes, scored by VideoChat2's MVBench rule (generation) or by
lmms-eval's own option log-likelihood accuracy. VLMKIT_LMMS_MEDIA_ROOT: the folder the videos are named under."""
import os

from vlmkit.data.datasets.multiple_choice import MVBENCH_SUFFIX
from vlmkit.mc_format import answer_letter, format_question


def doc_to_visual(doc):
    return [os.path.join(os.environ["VLMKIT_LMMS_MEDIA_ROOT"], doc["video"])]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return format_question(doc["question"], doc["candidates"]) + MVBENCH_SUFFIX


def doc_to_choice(doc):
    return [f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(doc["candidates"])]


def doc_to_target(doc):
    return ord(answer_letter(doc["answer"], doc["candidates"])) - ord("A")


def process_results(doc, results):
    """The VideoChat2 MVBench notebook's check: '(' put back in front, first line, first token, in '(x)'."""
    text = "(" + (results[0].strip().splitlines() or [""])[0]
    tokens = text.lower().split()
    token = tokens[0] if tokens else ""
    gt = f"({answer_letter(doc['answer'], doc['candidates']).lower()})"
    return {"mvbench_accuracy": float(token.replace(".", "") in gt or gt in token)}
