"""Video-MME: lmms-eval rows and the official per-video template, durations, the official prompt, the subtitle
lines of the sampled frames, and scoring by the lmms-eval/official letter rule with the duration/domain/
sub-category breakdown."""
from __future__ import annotations

import dataclasses
import json

import pytest

from tests.data.dataset_fixtures import contract  # noqa: F401
from tests.data.long_video_fixtures import long_video_data, predictions  # noqa: F401
from vlmkit.data.datasets.videomme import read_srt, subtitles_at
from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import DATASETS, METRICS

INSTRUCTION = ("Select the best answer to the following multiple-choice question based on the video. Respond with "
               "only the letter (A, B, C, or D) of the correct option.")


def build(contract, data, **cfg):
    root = data / "videomme"
    return DATASETS.build({"name": "videomme", "ann_path": str(root / "videomme.json"),
                           "media_root": str(root / "data"), **cfg}, contract=contract)


def test_rows_give_the_official_prompt_options_and_answers(contract, long_video_data):
    ds = build(contract, long_video_data)
    rows = json.loads((long_video_data / "videomme" / "videomme.json").read_text())
    assert [r.id for r in ds.items] == [row["question_id"] for row in rows] == ["001-1", "001-2", "001-3",
                                                                                "002-1", "002-2", "002-3"]
    first, row = ds.items[0], rows[0]
    options = "\n".join(row["options"])
    assert first.conversation[0]["value"] == (f"<video>\n{INSTRUCTION}\n{row['question']}\n{options}\n"
                                              f"The best answer is:")
    assert first.meta["options"] == [o[3:] for o in row["options"]] and first.meta["answer"] == row["answer"]
    assert first.meta["answer_text"] == first.meta["options"]["ABCD".index(row["answer"])]
    assert {k: first.meta[k] for k in ("duration", "domain", "sub_category", "task_type", "video_id")} == {
        "duration": "short", "domain": "Knowledge", "sub_category": "Astronomy",
        "task_type": row["task_type"], "video_id": "yt0000"}
    assert first.media.endswith("videomme/data/yt0000.mp4")
    assert ds[0]["input_ids"].ndim == 1


def test_durations_select_short_medium_long(contract, long_video_data):
    assert [r.id for r in build(contract, long_video_data, durations=["medium"]).items] == ["002-1", "002-2", "002-3"]
    assert {r.meta["duration"] for r in build(contract, long_video_data, durations=["short", "medium"]).items} == {
        "short", "medium"}
    with pytest.raises(ConfigError, match="unknown Video-MME duration"):
        build(contract, long_video_data, durations=["longest"])


def test_official_per_video_template_reads_the_same_questions(contract, long_video_data, tmp_path):
    rows = json.loads((long_video_data / "videomme" / "videomme.json").read_text())
    videos = {}
    for row in rows:
        video = videos.setdefault(row["videoID"], {k: row[k] for k in ("video_id", "duration", "domain",
                                                                      "sub_category", "videoID")} | {"questions": []})
        video["questions"].append({k: row[k] for k in ("question_id", "task_type", "question", "options", "answer")}
                                  | {"response": ""})
    template = tmp_path / "template.json"
    template.write_text(json.dumps(list(videos.values())))
    nested, flat = build(contract, long_video_data, ann_path=str(template)), build(contract, long_video_data)
    assert [(r.id, r.media, r.conversation, r.meta) for r in nested.items] == [
        (r.id, r.media, r.conversation, r.meta) for r in flat.items]


@pytest.mark.parametrize("change, message", [
    ({"options": ["A. x", "C. y", "B. z", "D. w"]}, "option 1 is 'C. y'"),
    ({"duration": "huge"}, "duration 'huge' is not one of"),
    ({"answer": "E"}, "answer 'E' is not one of the option letters ABCD"),
])
def test_broken_rows_are_refused_naming_the_entry(contract, long_video_data, tmp_path, change, message):
    rows = json.loads((long_video_data / "videomme" / "videomme.json").read_text())
    rows[1].update(change)
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError, match=rf"rows.json entry 1: .*{message}"):
        build(contract, long_video_data, ann_path=str(path))


def test_a_row_without_a_field_is_refused_naming_it(contract, long_video_data, tmp_path):
    rows = json.loads((long_video_data / "videomme" / "videomme.json").read_text())
    del rows[2]["question"]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError, match="rows.json entry 2: missing field 'question'"):
        build(contract, long_video_data, ann_path=str(path))


def test_subtitles_at_the_sampled_frames(long_video_data):
    cues = read_srt(str(long_video_data / "videomme" / "subtitle" / "yt0000.srt"))
    assert cues[2] == (0.5, 0.65, "Plain cue without a font tag") and cues[0][2] == "The square appears."
    # at 8 fps: cue frames [0,1), [2,3), [4,5), [5,6); frames 0, 2, 4, 7 show the first three
    assert subtitles_at(cues, [0, 2, 4, 7], 8.0) == ["The square appears.", "It starts to move.",
                                                     "Plain cue without a font tag"]
    assert subtitles_at(cues, [1, 3, 6, 7], 8.0) == []
    assert subtitles_at(cues, [5], 8.0) == ["between frames"]


def test_with_subtitles_the_prompt_holds_the_lines_of_the_sampled_frames(contract, long_video_data):
    root = long_video_data / "videomme"
    ds = build(contract, long_video_data, subtitles=True, subtitle_root=str(root / "subtitle"))
    assert "based on the video and the subtitles" in ds.items[0].conversation[0]["value"]
    sample = ds[0]  # the tiny model samples linspace(0, 7, 4) = frames 0, 2, 4, 7
    lines = "The square appears.\nIt starts to move.\nPlain cue without a font tag"
    assert sample["meta"]["subtitles"] == lines
    record = ds.items[0]
    body = record.conversation[0]["value"].removeprefix("<video>\n")
    assert body.startswith("Select the best answer")

    def encoded(text):
        turns = [{"from": "human", "value": f"<video>\n{text}"}, record.conversation[1]]
        return ds.builder.encode(dataclasses.replace(record, conversation=turns)).input_ids

    assert sample["input_ids"].tolist() == encoded(f"This video's subtitles are listed below:\n{lines}\n{body}")
    assert sample["input_ids"].tolist() != encoded(body)
    assert ds[3]["meta"]["subtitles"] == "No subtitles available"  # yt0001 has no srt
    plain = build(contract, long_video_data)
    assert "subtitles" not in plain[0]["meta"]
    with pytest.raises(ConfigError, match="subtitle_root"):
        build(contract, long_video_data, subtitles=True)


def test_bad_srt_names_the_cue(tmp_path):
    srt = tmp_path / "x.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,000\nfine\n\n2\n00:00:03 --> 00:00:04,000\nbad\n")
    with pytest.raises(DataError, match=r"x.srt cue 2: bad srt time '00:00:03'"):
        read_srt(str(srt))


def test_scoring_by_the_videomme_rule_with_breakdown(contract, long_video_data):
    ds = build(contract, long_video_data)
    truth = {r.id: r.meta["answer"] for r in ds.items}
    wrong = {r.id: "ABCD"[("ABCD".index(r.meta["answer"]) + 1) % 4] for r in ds.items}
    texts = {"001-1": f"The best answer is {truth['001-1']}.",   # right (prefix removed)
             "001-2": truth["001-2"],                              # right
             "001-3": wrong["001-3"],                              # wrong
             "002-1": f"({truth['002-1']})",                       # right
             "002-2": "I cannot tell from these few frames what the answer to that question would be",  # no letter
             "002-3": ""}                                          # empty: wrong
    metric = METRICS.build({"name": "mc_accuracy", "rule": "videomme",
                            "breakdown": ["duration", "domain", "sub_category"]})
    result = metric.compute(predictions(ds, texts))
    assert result["accuracy"] == pytest.approx(100 * 3 / 6)
    assert result["num_no_answer"] == 2
    assert result["accuracy/duration=short"] == pytest.approx(100 * 2 / 3)
    assert result["accuracy/duration=medium"] == pytest.approx(100 / 3)
    assert result["accuracy/domain=Knowledge"] == pytest.approx(100 * 2 / 3)
    assert result["accuracy/sub_category=Travel"] == pytest.approx(100 / 3)
    by_type: dict[str, list[bool]] = {}
    for record, ok in zip(ds.items, [True, True, False, True, False, False]):
        by_type.setdefault(record.meta["task_type"], []).append(ok)
    for task, oks in by_type.items():
        assert result[f"accuracy/{task}"] == pytest.approx(100 * sum(oks) / len(oks))
