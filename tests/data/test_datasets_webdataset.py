"""Webdataset caption shards stream, resume at the exact sample, and skip bad members visibly."""
from __future__ import annotations

import json

import pytest
import webdataset as wds
from torch.utils.data import DataLoader

from tests.data.dataset_fixtures import contract, media_dir  # noqa: F401
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS

SHARDS, PER_SHARD = 3, 4


@pytest.fixture(scope="module")
def shard_dir(media_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    mp4 = (media_dir / "good.mp4").read_bytes()
    png = (media_dir / "still.png").read_bytes()
    for s in range(SHARDS):
        with wds.TarWriter(str(root / f"train-{s:06d}.tar")) as sink:
            for i in range(PER_SHARD):
                key = f"s{s}_{i}"
                if i == 3:  # a CC3M-style image with a txt caption
                    sink.write({"__key__": key, "jpg": png, "txt": f"caption {key}".encode()})
                else:
                    sink.write({"__key__": key, "mp4": mp4, "json": json.dumps({"caption": f"caption {key}"}).encode()})
    with wds.TarWriter(str(root / "bad-000000.tar")) as sink:
        sink.write({"__key__": "ok", "mp4": mp4, "json": json.dumps({"caption": "fine"}).encode()})
        sink.write({"__key__": "nocap", "mp4": mp4, "json": json.dumps({"title": "x"}).encode()})
        sink.write({"__key__": "junk", "mp4": b"not a video at all" * 50, "txt": b"junk"})
    return root


def build(contract, root, **cfg):
    return DATASETS.build({"name": "webdataset_captions", "shards": "train-{000000..000002}.tar", "root": str(root),
                           **cfg}, contract=contract)


def ids(samples):
    return [s["meta"]["id"] for s in samples]


def test_streams_every_sample_once_with_caption_conversations(contract, shard_dir):
    ds = build(contract, shard_dir, prompts=["Describe it.", "What happens?"])
    assert len(ds) == SHARDS * PER_SHARD
    samples = list(ds)
    assert sorted(ids(samples)) == sorted(f"s{s}_{i}" for s in range(SHARDS) for i in range(PER_SHARD))
    first = samples[0]
    assert first["meta"]["answer"] == f"caption {first['meta']['id']}"
    assert first["meta"]["question"] in ("Describe it.", "What happens?")
    assert all(s["pixel_values"][0].shape == (4, 3, 32, 32) for s in samples)
    batch = ds.collater(samples[:3])
    assert batch["input_ids"].shape[0] == 3


@pytest.mark.parametrize("stop", [1, 5, 8, 11])
def test_resume_mid_stream_repeats_and_skips_nothing(contract, shard_dir, stop):
    full = ids(build(contract, shard_dir))
    ds = build(contract, shard_dir)
    stream = iter(ds)
    head = [next(stream)["meta"]["id"] for _ in range(stop)]
    state = json.loads(json.dumps(ds.state_dict()))  # survives a checkpoint round trip
    resumed = build(contract, shard_dir)
    resumed.load_state_dict(state)
    tail = ids(resumed)
    assert head + tail == full


def test_resume_with_workers_from_consumed_metas(contract, shard_dir):
    ds = build(contract, shard_dir)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=ds.collater)
    seen = []
    for batch in loader:
        ds.consumed(batch["meta"])  # the main process tracks the position
        seen += [m["id"] for m in batch["meta"]]
        if len(seen) >= 4:
            break
    resumed = build(contract, shard_dir)
    resumed.load_state_dict(ds.state_dict())
    rest = ids(resumed)
    assert not set(seen) & set(rest)
    assert sorted(seen + rest) == sorted(ids(build(contract, shard_dir)))


def test_bad_members_are_skipped_counted_and_listed(contract, shard_dir, tmp_path):
    ds = DATASETS.build({"name": "webdataset_captions", "shards": "bad-000000.tar", "root": str(shard_dir),
                         "bad_sample_dir": str(tmp_path)}, contract=contract)
    assert ids(ds) == ["ok"]
    bad = ds.bad_samples()
    assert [b["id"] for b in bad] == ["nocap", "junk"]
    assert "caption" in bad[0]["reason"] and "junk" in bad[1]["file"]
    assert (tmp_path / "bad_samples.jsonl").read_text().count("\n") == 2
    strict = DATASETS.build({"name": "webdataset_captions", "shards": "bad-000000.tar", "root": str(shard_dir),
                             "on_bad_sample": "raise"}, contract=contract)
    with pytest.raises(DataError, match="nocap"):
        list(strict)


def test_a_changed_shard_list_refuses_an_old_position(contract, shard_dir):
    ds = build(contract, shard_dir)
    with pytest.raises(DataError, match="shard list changed"):
        ds.load_state_dict({"epoch": 0, "cursors": {"train-000009.tar": 2}, "done": []})
