"""The ``lmms_mcq`` and ``lmms_mvbench`` rules against lmms-eval's own functions, on a generated corpus.

lmms-eval is not a dependency (it pulls ~50 packages: wandb, yt-dlp, opencv, ...).  The functions compared here
import nothing heavy, so installing the package without its dependencies is enough:
    .venv/bin/python -m pip install --no-deps lmms-eval==0.7.3
The test reads them from the installed files without importing the ``lmms_eval`` package (whose ``__init__``
needs those dependencies) and skips, saying so, when lmms-eval is not installed.
"""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import itertools
import random
import re
import string
import warnings

import pytest

from vlmkit.metrics.mc_extract import RULES, Question
from vlmkit.registry import METRICS

try:
    _DIST = importlib.metadata.distribution("lmms_eval")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("lmms-eval not installed; differential MC tests need `pip install --no-deps lmms-eval==0.7.3`",
                allow_module_level=True)


def _upstream_mcq_extract():
    path = _DIST.locate_file("lmms_eval/tasks/_task_utils/mcq_extract.py")  # imports only typing
    spec = importlib.util.spec_from_file_location("lmms_eval_mcq_extract_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.extract_mcq_answer


def _upstream_mvbench(*names):
    """The named top-level functions of lmms-eval's mvbench/utils.py (the module itself needs loguru, PIL, ...)."""
    source = _DIST.locate_file("lmms_eval/tasks/mvbench/utils.py").read_text()
    with warnings.catch_warnings():  # upstream's "\d" in non-raw strings
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(source)
    defs = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
    assert {d.name for d in defs} == set(names), f"lmms-eval {_DIST.version}: mvbench/utils.py changed"
    namespace = {"re": re, "string": string}
    exec(compile(ast.Module(body=defs, type_ignores=[]), "mvbench_utils", "exec"), namespace)
    return [namespace[n] for n in names]


extract_mcq_answer = _upstream_mcq_extract()
mcq_acc, mvbench_aggregate_results, mvbench_process_results = _upstream_mvbench(
    "mcq_acc", "mvbench_aggregate_results", "mvbench_process_results")

# ---------------------------------------------------------------- the generated corpus
_WRAPS = ["{}", "({})", "[{}]", "{}.", "{})", "({}", "{}:", "{},", "({}).", '"{}"', "'{}'", "{}/", "<{}>", "{{{}}}",
          "-{}-", "_{}_", "*{}*", "{}!", "{}?", "{};", "`{}`", "{}=", "+{}", "{}\\", "@{}", "{}..", "{}'s"]
_CONTEXTS = ["{}", "The answer is {}", "The answer is {}.The person sat down.", "1.{}", "{}1,000 people",
             "{} 1,000 people", "Answer: {} because", "I choose {}", "{}. the man", "{}.\nsecond line", "答案是{}",
             "option {} is right", "{} or C", "It is {}, not A", " {}\t", "The best answer is {}\n", "{}  /C",
             "选{}", "Best option: {} a dog", "{}.3 seconds"]
_TOKENS = (list("ABCDEFabcdefIXZ") + list(" .,;:/()[]{}\"'!?-_=+<>@`\\*#|~")
           + ["\n", "\t", "1", "0", "1,000", "2.5", "é", "İ", "ß", "答案是", "选", "정답은", "\u3000", "\xa0"]
           + ["answer", "The answer is ", "option ", "I pick ", "the ", "person ", "Best option:"])


def _corpus() -> list[str]:
    texts = {wrap.format(letter) for wrap in _WRAPS for letter in "ABEFbe"}
    texts |= {context.format(wrap.format(letter)) for context in _CONTEXTS for wrap in _WRAPS[:12] for letter in "Bc"}
    texts |= {"".join(pair) for pair in itertools.product(["A", "b", "(B)", "B.", "1", "-", " ", "/", "C:"], repeat=3)}
    strip_chars = ",.!?;:'\""  # extract_mcq_answer strips these from the ends, one pass each, in this order
    texts |= {core + a + b for core in ["xB A", "A", "xA (B)", "I think C"] for a in ["", *strip_chars]
              for b in ["", *strip_chars]}
    texts |= {head + phrase + tail for head in ["", "(A) ", "x D: ", "B. or ", "İ"]
              for phrase in ["The answer is ", "answer is", "THE CORRECT OPTION IS ", "I choose ", "my choice is: ",
                             "选", "答案为 ", "옵션 ", "답:", "정답은 ", "答えは"]
              for tail in ["B", "(B) not A", "Because A", " bad C, D", "cD.", "b", "Bx ok", "nothing", "C) x"]}
    rng = random.Random(18)
    texts |= {"".join(rng.choices(_TOKENS, k=rng.randint(1, 12))) for _ in range(1500)}
    texts |= {"", " ", "\n", "\t ", "A/B /C", "(B)1,000 people", "1.B", "The answer is B.The person sat down.",
              "." * 40 + "B" + "." * 40 + "c"}  # more than 32 periods: upstream deletes only 32
    return sorted(texts)


CORPUS = _corpus()


def test_corpus_is_large():
    assert len(CORPUS) >= 1000


@pytest.mark.parametrize("letters", ["ABCD", "ABCDE", "AB", "ABCDEFGH"])
def test_lmms_mcq_agrees_with_extract_mcq_answer(letters):
    rule = RULES["lmms_mcq"]
    disagree = [(t, rule(t, Question(letters, gt="A"))[0], extract_mcq_answer(t, choices=list(letters)))
                for t in CORPUS]
    disagree = [d for d in disagree if d[1] != d[2]]
    assert not disagree, f"{len(disagree)}/{len(CORPUS)} differ, e.g. {disagree[:5]}"


def test_lmms_mvbench_agrees_with_mcq_acc():
    rule = RULES["lmms_mvbench"]
    disagree = []
    for text in CORPUS:
        # F: a sixth option, which upstream compares as lower-cased text rather than as a letter
        credited = [gt for gt in "ABCDEF" if mcq_acc(gt, text)]
        ours = [gt for gt in "ABCDEF" if rule(text, Question("ABCDEF", gt=gt))[1]]
        letter = rule(text, Question("ABCDEF", gt="A"))[0]  # the letter A-E upstream reads, else ""
        if ours != credited or letter != "".join(c for c in credited if c != "F"):
            disagree.append((text, letter, ours, credited))
    assert not disagree, f"{len(disagree)}/{len(CORPUS)} differ, e.g. {disagree[:5]}"


def test_mc_accuracy_with_empty_exclude_equals_mvbench_aggregate():
    options = ["o0", "o1", "o2", "o3", "o4"]
    rng = random.Random(5)
    rows = [(text, rng.randrange(5)) for text in CORPUS if text] + [("", 1), ("", 2)]
    upstream = mvbench_aggregate_results(
        [mvbench_process_results({"candidates": options, "answer": options[k]}, [text])["mvbench_accuracy"]
         for text, k in rows])
    preds = [{"id": i, "prediction": text, "answer": options[k], "options": options, "task_type": "t"}
             for i, (text, k) in enumerate(rows)]
    ours = METRICS.build({"name": "mc_accuracy", "rule": "lmms_mvbench", "empty": "exclude"}).compute(preds)
    assert ours["num_scored"] == len(rows) - 2  # only the two "" are left out; " " and "\n" are answers
    assert ours["accuracy"] == pytest.approx(upstream)
