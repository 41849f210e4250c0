"""EgoSchema subset: questions.json + subset_answers.json, only answered questions, lmms-eval's prompt, and the
official accuracy (answer index) on fixed predictions."""
from __future__ import annotations

import json

import pytest

from tests.data.dataset_fixtures import contract  # noqa: F401
from tests.data.long_video_fixtures import long_video_data, predictions  # noqa: F401
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS, METRICS


def build(contract, data, **cfg):
    root = data / "egoschema"
    return DATASETS.build({"name": "egoschema", "ann_path": str(root / "questions.json"),
                           "answers_path": str(root / "subset_answers.json"), "media_root": str(root / "videos"),
                           **cfg}, contract=contract)


def test_subset_questions_prompt_and_answers(contract, long_video_data):
    ds = build(contract, long_video_data)
    questions = json.loads((long_video_data / "egoschema" / "questions.json").read_text())
    answers = json.loads((long_video_data / "egoschema" / "subset_answers.json").read_text())
    assert [r.id for r in ds.items] == [q["q_uid"] for q in questions[:-1]] == list(answers)  # last: no answer
    first, q = ds.items[0], questions[0]
    options = [q[f"option {k}"] for k in range(5)]
    listed = "\n".join(f"{'ABCDE'[k]}. {o}" for k, o in enumerate(options))
    assert first.conversation[0]["value"] == (f"<video>\n{q['question']}\n{listed}\n"
                                              f"Answer with the option's letter from the given choices directly.")
    assert first.meta["options"] == options
    assert first.meta["answer"] == first.conversation[1]["value"] == "ABCDE"[answers[q["q_uid"]]]
    assert first.media.endswith(f"egoschema/videos/{q['q_uid']}.mp4")
    assert ds[0]["input_ids"].ndim == 1


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update({"nope": 1}), r"1 answered q_uid\(s\) are not in .*questions.json: \['nope'\]"),
    (lambda a: a.update({next(iter(a)): 5}), "answer must be an option index 0..4, got 5"),
    (lambda a: a.update({next(iter(a)): "B"}), "answer must be an option index 0..4, got 'B'"),
])
def test_broken_answers_are_refused(contract, long_video_data, tmp_path, change, message):
    answers = json.loads((long_video_data / "egoschema" / "subset_answers.json").read_text())
    change(answers)
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(answers))
    with pytest.raises(DataError, match=message):
        build(contract, long_video_data, answers_path=str(path))


def test_a_question_without_an_option_is_refused_naming_it(contract, long_video_data, tmp_path):
    questions = json.loads((long_video_data / "egoschema" / "questions.json").read_text())
    del questions[1]["option 4"]
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(questions))
    with pytest.raises(DataError, match="questions.json entry 1: missing field 'option 4'"):
        build(contract, long_video_data, ann_path=str(path))


def test_accuracy_on_fixed_predictions(contract, long_video_data):
    ds = build(contract, long_video_data)
    ids = [r.id for r in ds.items]
    truth = {r.id: r.meta["answer"] for r in ds.items}
    other = {i: "E" if truth[i] != "E" else "A" for i in ids}
    texts = {ids[0]: truth[ids[0]], ids[1]: f"The answer is ({truth[ids[1]]}).", ids[2]: other[ids[2]],
             ids[3]: f"{truth[ids[3]]}. {ds.items[3].meta['answer_text']}", ids[4]: "no idea"}
    result = METRICS.build({"name": "mc_accuracy", "rule": "lmms_mcq"}).compute(predictions(ds, texts))
    assert result["accuracy"] == pytest.approx(100 * 3 / 5)
    assert result["num_no_answer"] == 1 and result["num_samples"] == 5
