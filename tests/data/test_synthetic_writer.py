"""Files on disk: real mp4s that decode back, readable webdataset shards, the JSON formats, and the skip logic."""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from vlmkit.demo.synthetic import SyntheticVideoGenerator, ensure_synthetic_dataset
from vlmkit.demo.synthetic.__main__ import main as cli_main
from vlmkit.demo.synthetic.scenes import PALETTE, SceneSpec
from vlmkit.errors import DataError

TRAIN, TEST, SEED, SHARD = 25, 12, 3, 10
PARAMS = {"shard_size": SHARD}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    manifest = ensure_synthetic_dataset(out, TRAIN, TEST, SEED, workers=2, **PARAMS)
    return out, manifest


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _load(out: Path, name: str):
    return json.loads((out / name).read_text())


def test_manifest_and_counts(dataset):
    out, manifest = dataset
    assert manifest["skipped"] is False
    assert manifest["params"]["seed"] == SEED and manifest["params"]["generator"]["shard_size"] == SHARD
    assert manifest["shards"] == [f"shards/train-00000{i}.tar" for i in range(3)]
    assert manifest["shard_pattern"] == "shards/train-{000000..000002}.tar"
    assert len(list((out / "videos" / "train").glob("*.mp4"))) == TRAIN
    assert len(list((out / "videos" / "test").glob("*.mp4"))) == TEST
    counts = manifest["counts"]
    assert counts["test_captions"] == TEST and counts["test_open_qa"] == TEST
    assert counts["test_mc"] == len(_load(out, "test_mc.json")) >= 3 * TEST
    assert manifest["videos_per_second"] > 0


def test_videos_decode_to_the_rendered_frames(dataset):
    out, _ = dataset
    generator = SyntheticVideoGenerator(**PARAMS)
    for index in range(TEST):
        video = generator.sample("test", index, SEED)
        decoded = _decode(out / video.video_path)
        assert decoded.shape == (8, 32, 32, 3)
        rendered = generator.frames(video)
        assert np.abs(decoded.astype(int) - rendered).mean() < 4
        for obj in video.spec.objects:   # the pixel at the object's centre has the object's colour
            for t in range(obj.appear, 8):
                x, y = obj.position(t)
                centre = decoded[t, y + 4, x + 4].astype(int)   # every shape covers its centre pixel
                assert np.abs(centre - PALETTE[obj.colour]).max() < 40, (video.video_id, obj, t, centre)


def test_decord_reads_the_same_frames(dataset):
    decord = pytest.importorskip("decord")
    out, _ = dataset
    path = out / "videos" / "test" / "test_000004.mp4"
    reader = decord.VideoReader(str(path), num_threads=1)
    assert len(reader) == 8
    frames = reader.get_batch(list(range(8))).asnumpy()
    assert frames.shape == (8, 32, 32, 3)
    assert np.abs(frames.astype(int) - _decode(path)).max() <= 2


def test_shards_are_readable_with_webdataset(dataset):
    import webdataset as wds

    out, manifest = dataset
    generator = SyntheticVideoGenerator(**PARAMS)
    pipeline = wds.WebDataset(str(out / manifest["shard_pattern"]), shardshuffle=False)
    samples = list(pipeline)
    assert [s["__key__"] for s in samples] == [f"train_{i:06d}" for i in range(TRAIN)]
    for i, sample in enumerate(samples):
        video = generator.sample("train", i, SEED)
        assert json.loads(sample["json"]) == {"caption": video.caption}
        assert sample["mp4"] == (out / video.video_path).read_bytes()


def test_json_formats(dataset):
    out, _ = dataset
    conversations = _load(out, "train_conversations.json")
    kinds = {e["task_type"].split("_")[0] for e in conversations}
    assert kinds <= {"mc", "open", "caption"} and {"mc", "open"} <= kinds
    for entry in conversations:
        assert set(entry) == {"id", "video", "task_type", "conversations"}
        assert (out / entry["video"]).is_file()
        human, gpt = entry["conversations"]
        assert human["from"] == "human" and human["value"].startswith("<video>\n") and gpt["from"] == "gpt"
    assert len({e["id"] for e in conversations}) == len(conversations)
    for entry in _load(out, "test_mc.json"):
        assert set(entry) == {"id", "video", "question", "candidates", "answer", "task_type"}
        assert len(entry["candidates"]) == 4 and entry["answer"] in entry["candidates"]
        assert entry["video"].startswith("videos/test/")
    for entry in _load(out, "test_open_qa.json"):
        assert set(entry) == {"id", "video", "question", "answer", "task_type"} and entry["answer"]
    for entry in _load(out, "test_captions.json"):
        assert set(entry) == {"id", "video", "captions"} and len(entry["captions"]) == 2
    generator = SyntheticVideoGenerator(**PARAMS)
    for index, entry in enumerate(_load(out, "test_scenes.json")):
        assert SceneSpec.from_dict(entry["scene"]) == generator.sample("test", index, SEED).spec


def test_second_run_with_same_parameters_skips(dataset):
    out, first = dataset
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = ensure_synthetic_dataset(out, TRAIN, TEST, SEED, workers=2, **PARAMS)
    assert again["skipped"] is True and again["counts"] == first["counts"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_other_parameters_error_unless_overwrite(tmp_path):
    ensure_synthetic_dataset(tmp_path, 4, 2, seed=0, workers=0)
    with pytest.raises(DataError, match=r"seed: 0 on disk, 1 asked for.*overwrite"):
        ensure_synthetic_dataset(tmp_path, 4, 2, seed=1, workers=0)
    with pytest.raises(DataError, match=r"generator\.crf: 18 on disk, 20 asked for"):
        ensure_synthetic_dataset(tmp_path, 4, 2, seed=0, workers=0, crf=20)
    (tmp_path / "notes.txt").write_text("mine")
    redone = ensure_synthetic_dataset(tmp_path, 3, 2, seed=1, workers=0, overwrite=True)
    assert redone["skipped"] is False and redone["params"]["seed"] == 1
    assert len(list((tmp_path / "videos" / "train").iterdir())) == 3
    assert (tmp_path / "notes.txt").read_text() == "mine", "only the generator's own files are replaced"


def test_incomplete_output_is_regenerated(tmp_path):
    ensure_synthetic_dataset(tmp_path, 4, 2, seed=0, workers=0)
    victim = tmp_path / "videos" / "train" / "train_000002.mp4"
    content = victim.read_bytes()
    victim.unlink()
    redone = ensure_synthetic_dataset(tmp_path, 4, 2, seed=0, workers=0)
    assert redone["skipped"] is False and victim.read_bytes() == content
    (tmp_path / "manifest.json").unlink()      # an interrupted run never wrote its manifest
    assert ensure_synthetic_dataset(tmp_path, 4, 2, seed=0, workers=0)["skipped"] is False


def test_output_does_not_depend_on_worker_count(dataset, tmp_path):
    out, manifest = dataset
    ensure_synthetic_dataset(tmp_path, TRAIN, TEST, SEED, workers=0, **PARAMS)
    for relative in [*manifest["shards"], "train_conversations.json", "test_mc.json", "test_open_qa.json",
                     "test_captions.json", "videos/train/train_000007.mp4", "videos/test/test_000011.mp4"]:
        assert (tmp_path / relative).read_bytes() == (out / relative).read_bytes(), relative


def test_command_line(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--train", "3", "--test", "2", "--seed", "5", "--workers", "0", "--quiet",
            "--colours", "red,blue,green,white", "--two-object-fraction", "1.0", "--attributes-for-each-object",
            "false", "--train-two-object-fraction", "0.8"]
    assert cli_main(argv) == 0
    assert "generated" in capsys.readouterr().out
    params = _load(tmp_path, "manifest.json")["params"]["generator"]
    assert params["colours"] == ["red", "blue", "green", "white"] and params["attributes_for_each_object"] is False
    assert params["train_two_object_fraction"] == 0.8   # an optional float flag
    assert len(_load(tmp_path, "test_mc.json")) == 2 * 5    # two-object videos, one question per type
    assert cli_main(argv) == 0
    assert "skipped" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["--out", str(tmp_path), "--train", "3", "--test", "2", "--no-such-flag", "1"])
