"""NExT-QA multiple choice: the csv, the video map, TP merged into TN, lmms-eval's prompt, and eval_mc.py's
figures (per type, causal / temporal / descriptive, overall) on fixed predictions."""
from __future__ import annotations

import csv

import pytest

from tests.data.dataset_fixtures import contract  # noqa: F401
from tests.data.long_video_fixtures import long_video_data, predictions  # noqa: F401
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS, METRICS


def build(contract, data, **cfg):
    root = data / "nextqa"
    return DATASETS.build({"name": "nextqa", "ann_path": str(root / "val.csv"), "media_root": str(root / "videos"),
                           "map_path": str(root / "map_vid_vidorID.json"), **cfg}, contract=contract)


def rows_of(data):
    with open(data / "nextqa" / "val.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_rows_prompt_types_and_videos(contract, long_video_data):
    ds = build(contract, long_video_data)
    rows = rows_of(long_video_data)
    assert [r.id for r in ds.items] == [f"{row['video']}_{row['qid']}" for row in rows]
    assert [row["type"] for row in rows] == ["CW", "TC", "DL", "TP", "CW", "TC"]
    assert [r.meta["task_type"] for r in ds.items] == ["CW", "TC", "DL", "TN", "CW", "TC"]  # TP counts as TN
    assert [r.meta["type_group"] for r in ds.items] == ["causal", "temporal", "descriptive", "temporal", "causal",
                                                        "temporal"]
    first, row = ds.items[0], rows[0]
    listed = "\n".join(f"{'ABCDE'[k]}. {row[f'a{k}']}" for k in range(5))
    assert first.conversation[0]["value"] == (f"<video>\n{row['question']}\n{listed}\n"
                                              f"Answer with the option's letter from the given choices directly.")
    assert first.meta["answer"] == "ABCDE"[int(row["answer"])]
    assert first.media.endswith(f"nextqa/videos/1000/{row['video']}.mp4")  # through map_vid_vidorID.json
    assert ds[0]["input_ids"].ndim == 1
    flat = build(contract, long_video_data, map_path=None, media_root="NExTVideo")
    assert flat.items[0].media == f"NExTVideo/{row['video']}.mp4"


@pytest.mark.parametrize("column, value, message", [
    ("type", "XX", "val.csv row 3: question type 'XX' is not one of"),
    ("answer", "7", r"val.csv row 3 \(column answer\): the answer must be an option index 0..4, got '7'"),
    ("video", "123", "val.csv row 3: video '123' is not in .*map_vid_vidorID.json"),
])
def test_broken_rows_are_refused_naming_the_row(contract, long_video_data, tmp_path, column, value, message):
    rows = rows_of(long_video_data)
    rows[1][column] = value
    path = tmp_path / "val.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(DataError, match=message):
        build(contract, long_video_data, ann_path=str(path))


def test_missing_column_is_refused(contract, long_video_data, tmp_path):
    path = tmp_path / "val.csv"
    path.write_text("video,question,answer,qid,type,a0,a1,a2,a3\n1,q,0,0,CW,a,b,c,d\n")
    with pytest.raises(DataError, match=r"val.csv: missing column\(s\) \['a4'\]"):
        build(contract, long_video_data, ann_path=str(path))


def test_eval_mc_figures_on_fixed_predictions(contract, long_video_data):
    ds = build(contract, long_video_data)
    right = [True, True, False, True, False, True]  # CW TC DL TN CW TC
    texts = {}
    for record, ok in zip(ds.items, right):
        letter = record.meta["answer"] if ok else "ABCDE"[("ABCDE".index(record.meta["answer"]) + 1) % 5]
        texts[record.id] = f"The answer is {letter}."
    metric = METRICS.build({"name": "mc_accuracy", "rule": "lmms_mcq", "breakdown": ["type_group"]})
    result = metric.compute(predictions(ds, texts))
    assert result["accuracy"] == pytest.approx(100 * 4 / 6)
    assert (result["accuracy/type_group=causal"], result["accuracy/type_group=temporal"],
            result["accuracy/type_group=descriptive"]) == pytest.approx((50.0, 100.0, 0.0))
    assert (result["accuracy/CW"], result["accuracy/TC"], result["accuracy/TN"], result["accuracy/DL"]) == \
        pytest.approx((50.0, 100.0, 100.0, 0.0))
