import pytest

from vlmkit.errors import DataError
from vlmkit.registry import METRICS


def test_exact_match_and_contains():
    preds = [{"id": 0, "prediction": "The Dog.", "answer": "dog"},
             {"id": 1, "prediction": "a tired man", "references": ["red", "man"]},
             {"id": 2, "prediction": "he is tired", "answer": "red"}]
    exact = METRICS.build({"name": "exact_match"})
    assert [exact.score_sample(p)["correct"] for p in preds] == [True, False, False]
    contains = METRICS.build({"name": "contains"})
    assert [contains.score_sample(p)["correct"] for p in preds] == [True, True, False]  # "red" not in "tired"
    assert contains.compute(preds)["contains"] == pytest.approx(200 / 3)
    strict = METRICS.build({"name": "exact_match", "lowercase": False, "percent": False})
    assert strict.compute(preds[:1])["exact_match"] == 0.0
    with pytest.raises(DataError, match="neither 'references' nor 'answer'"):
        exact.compute([{"id": 3, "prediction": "x"}])


def test_judge_config_is_validated_before_anything_runs():
    errors = METRICS.check({"name": "judged_qa", "judge": {"name": "openai_judge", "modle": "x"}})
    assert any("modle" in str(e) for e in errors)
    assert {"openai_judge", "transformers_judge", "judged_qa", "vcgbench", "mc_accuracy", "caption_coco", "gebc",
            "niah_grid", "exact_match", "contains"} <= set(METRICS.names())
