"""An answer that names no option never scores (issue: empty predictions reported as 100 % under mvbench)."""
import random
import string
import zlib

import pytest

from vlmkit.metrics.mc_extract import RULES, Question, names_an_option
from vlmkit.registry import METRICS

OPTIONS = ["a man cooking", "a dog running", "two cars", "the sky"]
PREFIXES = ["", "(", "Best option: (", "Answer: "]


def _sample(prediction, answer="a dog running", k=0):
    return dict(id=k, prediction=prediction, answer=answer, options=OPTIONS, task_type="t")


def _metric(rule, prefix="", **extra):
    return METRICS.build({"name": "mc_accuracy", "rule": rule, "prediction_prefix": prefix, **extra})


def _no_option_strings(count, seed):
    """Random strings with no option letter (a-d, either case) and hence no option text."""
    rng = random.Random(seed)
    alphabet = [c for c in string.ascii_letters + string.digits + string.punctuation + " \n\t"
                if c.lower() not in "abcd"]
    fixed = ["", " ", "\n", "(", "((", ")", ".", "()", "(.)", "...", "?!", "Option", "The answer is", "none"]
    return fixed + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))) for _ in range(count)]


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("prefix", PREFIXES)
def test_text_naming_no_option_never_scores(rule, prefix):
    texts = _no_option_strings(300, seed=zlib.crc32(f"{rule}|{prefix}".encode()))
    metric = _metric(rule, prefix)
    for gt in OPTIONS:
        out = metric.compute([_sample(t, gt, k) for k, t in enumerate(texts)])
        assert out["accuracy"] == 0.0, (rule, prefix, gt)
        assert out["num_no_answer"] == len(texts)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_prefix_alone_never_scores(rule):
    for prefix in PREFIXES:
        scored = _metric(rule, prefix).score_sample(_sample(""))
        assert scored["correct"] is False and scored["no_answer"] is True, (rule, prefix)


def test_collapsed_model_under_the_tiny_eval_protocol_is_not_perfect():
    # eval_configs/tiny/multiple_choice.yaml's metric: every generation empty -> 0 %, all counted as no answer.
    metric = _metric("mvbench", "(", first_line_only=True, overall="micro")
    preds = [_sample("", gt, k) for k, gt in enumerate(OPTIONS * 5)]
    out = metric.compute(preds)
    assert out["accuracy"] == 0.0 and out["num_no_answer"] == len(preds)
    assert "credit_no_answer" not in out and "num_no_answer_credited" not in out


def test_upstream_crediting_is_explicit_and_reported():
    metric = _metric("mvbench", "(", credit_no_answer=True)
    preds = [_sample("", "a dog running", 0), _sample("b", "a dog running", 1), _sample("(c)", "a dog running", 2)]
    out = metric.compute(preds)
    assert out["accuracy"] == pytest.approx(200 / 3)  # the notebook's figure: "" counts, "(c)" does not
    assert out["credit_no_answer"] == 1.0 and out["num_no_answer_credited"] == 1.0 and out["num_no_answer"] == 1.0


# (rule, prefix, text, correct) -- each rule's documented upstream examples, ground truth B.
UPSTREAM_EXAMPLES = [
    ("mvbench", "(", "B) a dog running", True), ("mvbench", "(", "b", True), ("mvbench", "", "(B) dog", True),
    ("mvbench", "(", "C) two cars", False), ("videogpt_plus", "", "Answer: (B) dog", True),
    ("mlvu", "", "B) dog (C)", True), ("mlvu", "", "b) dog", False),
    ("videomme", "", "The best answer is B", True), ("videomme", "", "B", True),
    ("lmms_mcq", "", "The answer is (B).", True), ("lmms_mcq", "", "I choose B.", True),
    ("vnbench", "", "B. a dog running", True), ("lmms_mvbench", "", "B. a dog running", True),
    ("lmms_mvbench", "", "(b)", True), ("vlmkit", "", "a dog running", True), ("vlmkit", "", "Best option: (B)", True),
]


@pytest.mark.parametrize("rule, prefix, text, correct", UPSTREAM_EXAMPLES)
def test_upstream_examples_still_score_as_upstream(rule, prefix, text, correct):
    assert _metric(rule, prefix).score_sample(_sample(text))["correct"] is correct


@pytest.mark.parametrize("text, named", [
    ("b", True), ("(B)", True), ("B.", True), ("答案是B", True), ("It is a dog running", True), ("A person", True),
    ("bird", False), ("", False), ("(", False), ("two car", False), ("the skyline", False),
    ("İb", True),  # "İ" is not an ASCII letter (lmms-eval's MVBench credits "İb" as B)
])
def test_names_an_option(text, named):
    assert names_an_option(text, Question("ABCD", OPTIONS, "B")) is named
