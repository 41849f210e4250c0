import pytest

from vlmkit.errors import DataError
from vlmkit.metrics.mc_extract import RULES, Question
from vlmkit.mc_format import answer_letter, format_options, format_question
from vlmkit.registry import METRICS

OPTIONS = ["a man cooking", "a dog running", "two cars", "the sky"]

# prediction text -> expected extraction per rule ("" = no letter). Ground truth is B throughout.
CORPUS = {
    "(B)":                            dict(vlmkit="B", videomme="B", lmms_mcq="B", vnbench="B", lmms_mvbench="B", mlvu="B"),
    "B.":                             dict(vlmkit="B", videomme="B", lmms_mcq="B", vnbench="B", lmms_mvbench="B", mlvu="B."),
    "The answer is C":                dict(vlmkit="C", videomme="C", lmms_mcq="C", vnbench="C", lmms_mvbench="C"),
    "A person is cooking":            dict(vlmkit="", videomme="A", lmms_mcq="A", vnbench="A", lmms_mvbench="A"),
    "b":                              dict(vlmkit="B", videomme="", lmms_mcq="", vnbench="", lmms_mvbench="B", mlvu="b"),
    "(b)":                            dict(vlmkit="B", videomme="", vnbench="", lmms_mvbench="B", mlvu="b"),
    "":                               dict(vlmkit="", videomme="", lmms_mcq="", vnbench="", lmms_mvbench="", mlvu=""),
    "Answer: (D) because A is wrong": dict(vlmkit="D", videomme="A", lmms_mcq="D", vnbench="A", lmms_mvbench="D", mlvu="D"),
    "Best option: (B) a dog running": dict(vlmkit="B", videomme="B", lmms_mcq="B", vnbench="B", mlvu="B"),
    "B) a dog":                       dict(vlmkit="B", mlvu="B"),
    "C because the car moves":        dict(vlmkit="C", videomme="C"),
    "I think it is not A but C":      dict(vlmkit="", videomme="A", lmms_mcq="C", vnbench="A"),
    "none":                           dict(vlmkit="", videomme="", lmms_mcq="", vnbench="", lmms_mvbench=""),
    "Option C":                       dict(vlmkit="C", lmms_mcq="C"),
    "answer: c":                      dict(vlmkit="C", videomme=""),
    "(E)":                            dict(vlmkit="", videomme="", lmms_mvbench="E", mlvu="E"),
    "It shows a dog running.":        dict(vlmkit="B", videomme="", lmms_mvbench="A"),
    "I pick (C) for sure":            dict(vlmkit="C", lmms_mcq="C"),
    "The dog and the man (A) (B)":    dict(vlmkit=""),
    "one two three four five six seven eight nine ten eleven": dict(videomme=""),
    # lmms-eval's MVBench deletes "." (not before a digit), and all punctuation when "1,000" or a spaced mark occurs
    "The answer is B.The person sat down.": dict(lmms_mvbench="", lmms_mcq="B"),
    "1.B":                            dict(lmms_mvbench="", lmms_mcq="B"),
    "(B)1,000 people":                dict(lmms_mvbench="", lmms_mcq="B"),
    "A/B /C":                         dict(lmms_mvbench="C", lmms_mcq="A"),
    "b. a dog running":               dict(lmms_mvbench="B", lmms_mcq=""),
}


@pytest.mark.parametrize("text", list(CORPUS))
def test_letter_extraction_corpus(text):
    question = Question("ABCD", OPTIONS, "B")
    for rule, expected in CORPUS[text].items():
        extracted, correct = RULES[rule](text, question)
        assert extracted == expected, (rule, text, extracted)
        if rule != "mlvu":
            assert correct == (expected == "B")


@pytest.mark.parametrize("text, correct", [
    ("(b) a dog running", True), ("b", True), ("(b", True), ("b)", True), ("(b).", True),
    ("(c) two cars", False), ("bird", False),
    ("", True), (".", True), ("(", True),  # upstream quirks: "" and "(" are substrings of "(b)"
])
def test_mvbench_check_ans_semantics_as_upstream(text, correct):
    # The rule itself is the notebook's check_ans, quirks included; mc_accuracy's guard decides on no-answers.
    assert RULES["mvbench"](text, Question("ABCD", OPTIONS, "B"))[1] is correct


def test_videogpt_plus_uses_second_token():
    q = Question("ABCD", OPTIONS, "B")
    assert RULES["videogpt_plus"]("Answer: (B) dog", q) == ("(b)", True)
    assert RULES["videogpt_plus"]("(B)", q) == ("", False)


def test_mlvu_is_case_sensitive_and_reads_before_first_paren():
    q = Question("ABCD", OPTIONS, "B")
    assert RULES["mlvu"]("B) dog (C)", q) == ("B", True)
    assert RULES["mlvu"]("b) dog", q)[1] is False
    assert RULES["mlvu"](")B", q) == ("", False)


def test_option_formatting_and_answers():
    assert format_options(["x", "y"]) == "(A) x\n(B) y"
    assert format_options(["x", "y"], "dot") == "A. x\nB. y"
    assert format_question("What?", ["x", "y"]) == "Question: What?\nOptions:\n(A) x\n(B) y"
    assert format_question("What?", ["x", "y"], question_last=True) == "Options:\n(A) x\n(B) y\nQuestion: What?"
    assert answer_letter("two cars", OPTIONS) == "C"
    assert answer_letter("(D) the sky", OPTIONS) == "D"
    assert answer_letter(1, OPTIONS) == "B"
    assert answer_letter("c", OPTIONS) == "C"
    with pytest.raises(DataError, match="cannot tell"):
        answer_letter("a cat", OPTIONS)


def _preds(rows):
    return [dict(id=i, prediction=p, answer=a, options=OPTIONS, task_type=t, **extra)
            for i, (p, a, t, extra) in enumerate(rows)]


def test_micro_and_macro_accuracy_per_task():
    rows = [("(A)", "a man cooking", "x", {}), ("(B)", "a dog running", "x", {}), ("(C)", "the sky", "x", {}),
            ("(D)", "the sky", "x", {}), ("(A)", "a man cooking", "y", {}), ("(D)", "two cars", "y", {})]
    metric = METRICS.build({"name": "mc_accuracy"})
    out = metric.compute(_preds(rows))
    assert out["accuracy/x"] == pytest.approx(75.0)
    assert out["accuracy/y"] == pytest.approx(50.0)
    assert out["accuracy_micro"] == pytest.approx(100 * 4 / 6)
    assert out["accuracy_macro"] == pytest.approx(62.5)
    assert out["accuracy"] == out["accuracy_micro"]
    macro = METRICS.build({"name": "mc_accuracy", "overall": "macro"}).compute(_preds(rows))
    assert macro["accuracy"] == pytest.approx(62.5)


def test_mlvu_macro_example_from_reference():
    # 7 task types, one at 50 %: M-Avg 92.857 (lmms-eval's verified number).
    rows = [("(A)", "a man cooking", f"t{k}", {}) for k in range(7)] + [("(B)", "a man cooking", "t0", {})]
    out = METRICS.build({"name": "mc_accuracy", "rule": "lmms_mcq", "overall": "macro"}).compute(_preds(rows))
    assert out["accuracy"] == pytest.approx(92.857, abs=1e-3)


def test_videochat2_prefix_and_first_line():
    metric = METRICS.build({"name": "mc_accuracy", "rule": "mvbench", "prediction_prefix": "(",
                            "first_line_only": True})
    sample = dict(id=0, prediction="B) a dog running\n(A) whatever", answer="a dog running", options=OPTIONS,
                  task_type="t")
    assert metric.score_sample(sample)["correct"] is True


def test_empty_predictions_wrong_or_excluded():
    rows = [("(A)", "a man cooking", "x", {}), ("", "a dog running", "x", {}), (" \n", "a dog running", "x", {})]
    assert METRICS.build({"name": "mc_accuracy"}).compute(_preds(rows))["accuracy"] == pytest.approx(100 / 3)
    out = METRICS.build({"name": "mc_accuracy", "empty": "exclude"}).compute(_preds(rows))
    # lmms-eval leaves out only "": whitespace is a (wrong) answer
    assert out["accuracy"] == pytest.approx(50.0) and out["num_scored"] == 2


def test_circular_requires_all_tries_and_breakdown():
    rows = [("A", "a man cooking", "ret", {"q": "1", "duration": "short"}),
            ("A", "a man cooking", "ret", {"q": "1", "duration": "short"}),
            ("B", "a man cooking", "ret", {"q": "2", "duration": "long"}),
            ("A", "a man cooking", "ret", {"q": "2", "duration": "long"})]
    out = METRICS.build({"name": "mc_accuracy", "rule": "vnbench", "circular_key": "q",
                         "breakdown": ["duration"]}).compute(_preds(rows))
    assert out["accuracy"] == pytest.approx(50.0) and out["num_scored"] == 2
    assert out["accuracy/duration=short"] == 100.0 and out["accuracy/duration=long"] == 0.0


def test_config_errors_are_clear():
    with pytest.raises(Exception, match="rule"):
        METRICS.build({"name": "mc_accuracy", "rule": "nope"})
    with pytest.raises(DataError, match="no field 'answer'"):
        METRICS.build({"name": "mc_accuracy"}).compute([{"id": 1, "prediction": "A", "task_type": "x"}])
