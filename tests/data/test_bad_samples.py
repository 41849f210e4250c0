"""Missing, empty, truncated, corrupt, blank and mismatched samples under each policy: named, counted, listed,
never passed on as an empty or zero tensor."""
from __future__ import annotations

import json

import pytest

from tests.data.dataset_fixtures import contract, conversation, media_dir, write_json  # noqa: F401
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS

FAULTS = {"missing.mp4": "not found", "empty.mp4": "empty file", "corrupt.mp4": "could not be decoded",
          "truncated.mp4": "", "notes.mp4": "could not be decoded", "black.mp4": "black"}


@pytest.fixture(scope="module")
def annotations(media_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_ann")
    (media_dir / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
    entries = [{"id": "good", "video": "good.mp4", "conversations": conversation("q", "a")}]
    entries += [{"id": name, "video": name, "conversations": conversation("q", "a")} for name in FAULTS]
    entries.append({"id": "no_placeholder", "video": "good.mp4",
                    "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]})
    entries.append({"id": "two_placeholders", "video": "good.mp4",
                    "conversations": conversation("<video> twice", "a")})
    return write_json(folder / "ann.json", entries)


def build(contract, media_dir, ann, **cfg):
    return DATASETS.build({"name": "llava_instruct", "ann_path": ann, "media_root": str(media_dir), **cfg},
                          contract=contract)


def test_raise_names_the_file_and_the_reason(contract, media_dir, annotations):
    ds = build(contract, media_dir, annotations)
    for index, record in enumerate(ds.items):
        if record.id == "good":
            continue
        with pytest.raises(DataError) as err:
            ds[index]
        message = str(err.value)
        assert record.id in message
        if record.id in FAULTS:
            assert record.id in message and FAULTS[record.id] in message
        else:
            assert "placeholder" in message


def test_skip_drops_counts_lists_and_writes_every_bad_sample(contract, media_dir, annotations, tmp_path):
    ds = build(contract, media_dir, annotations, on_bad_sample="skip", bad_sample_dir=str(tmp_path))
    samples = [ds[i] for i in range(len(ds))]
    assert [s["id"] for s in samples if s is not None] == ["good"]
    listed = ds.bad_samples()
    assert len(listed) == len(ds) - 1 and {e["action"] for e in listed} == {"skipped"}
    assert {e["id"] for e in listed} == {r.id for r in ds.items} - {"good"}
    assert all(e["reason"] and e["file"] for e in listed)
    path = ds.write_bad_samples()
    summary = json.loads(path.read_text())["llava_instruct"]
    assert summary["count"] == len(ds) - 1 and summary["by_action"] == {"skipped": len(ds) - 1}
    # a batch keeps only the good sample; a batch of bad ones is None, never an empty tensor
    batch = ds.collater(samples)
    assert batch["pixel_values"][0].shape[0] == 1 and batch["pixel_values"][0].abs().sum() > 0
    assert ds.collater([None, None]) is None


def test_resample_replaces_bad_samples_with_good_ones_deterministically(contract, media_dir, annotations,
                                                                       tmp_path):
    entries = json.loads(open(annotations).read())
    entries += [{"id": f"good{k}", "video": "other.mp4", "conversations": conversation("q", "a")} for k in range(7)]
    ann = write_json(tmp_path / "mixed.json", entries)
    ds = build(contract, media_dir, ann, on_bad_sample="resample")
    first = [ds[i]["id"] for i in range(len(ds))]
    assert all(sample_id.startswith("good") for sample_id in first)
    assert {e["id"] for e in ds.bad_samples()} >= set(FAULTS) and {e["action"] for e in ds.bad_samples()} == {
        "resampled"}
    again = build(contract, media_dir, ann, on_bad_sample="resample")
    assert [again[i]["id"] for i in range(len(again))] == first


def test_all_bad_dataset_under_resample_gives_up_with_a_clear_error(contract, media_dir, tmp_path):
    ann = write_json(tmp_path / "bad.json", [{"id": "m", "video": "missing.mp4",
                                               "conversations": conversation("q", "a")}])
    ds = build(contract, media_dir, ann, on_bad_sample="resample")
    with pytest.raises(DataError, match="in a row were bad"):
        ds[0]


def test_short_video_repeats_frames_instead_of_padding(contract, media_dir, tmp_path):
    ann = write_json(tmp_path / "s.json", [{"id": "s", "video": "short.mp4", "conversations": conversation("q", "a")}])
    frames = build(contract, media_dir, ann, train=False).media.decode(str(media_dir / "short.mp4"))
    assert frames.shape[0] == 4 and all(frame.any() for frame in frames)
    distinct = {bytes(frame.flatten().tolist()) for frame in frames}
    assert len(distinct) == 2  # the video's two real frames, repeated; nothing invented


def test_unknown_policy_is_rejected_by_config_validation(contract, media_dir, annotations):
    with pytest.raises(Exception, match="on_bad_sample"):
        build(contract, media_dir, annotations, on_bad_sample="ignore")


def test_max_bad_fraction_stops_reading_once_the_share_is_over(contract, media_dir, annotations, tmp_path):
    from vlmkit.data.datasets.base import TooManyBadSamples

    ds = build(contract, media_dir, annotations, on_bad_sample="skip", bad_sample_dir=str(tmp_path))
    ds.set_max_bad_fraction(0.5)  # judged after min(50, len) reads: here after the whole dataset
    with pytest.raises(TooManyBadSamples, match=r"(?s)8 of 9 samples read were bad.*missing.mp4: .*not found"):
        for i in range(len(ds)):
            ds[i]
    ds.reset_bad_samples()
    assert ds.bad_samples() == [] and not (tmp_path / "bad_samples.jsonl").exists()


def test_resampled_bad_samples_count_once_with_their_events(contract, media_dir, annotations, tmp_path):
    entries = json.loads(open(annotations).read())
    entries += [{"id": f"good{k}", "video": "other.mp4", "conversations": conversation("q", "a")} for k in range(7)]
    ds = build(contract, media_dir, write_json(tmp_path / "mixed.json", entries), on_bad_sample="resample",
               bad_sample_dir=str(tmp_path))
    for _ in range(3):  # three passes: each bad sample fails at least three times
        for i in range(len(ds)):
            ds[i]
    summary = json.loads(ds.write_bad_samples().read_text())["llava_instruct"]
    assert summary["count"] == len(FAULTS) + 2 and summary["events"] >= 3 * summary["count"]
    assert summary["files"] == len(FAULTS) + 1  # the two placeholder faults share good.mp4
    assert sum(s["events"] for s in summary["samples"]) == summary["events"]
