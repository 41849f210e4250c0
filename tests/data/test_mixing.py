"""Weighted mixing: ratios within tolerance, deterministic from the seed, resumable, mixed image/video batches."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from tests.data.dataset_fixtures import contract, conversation, media_dir, tiny_model, write_json  # noqa: F401
from vlmkit.data.mixing import MixedDataset
from vlmkit.errors import ConfigError
from vlmkit.registry import DATASETS
from vlmkit.runners.sampler import ResumableSampler


class Numbers(Dataset):
    def __init__(self, tag: str, size: int):
        self.tag, self.size = tag, size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        return {"id": f"{self.tag}{index}", "meta": {"id": f"{self.tag}{index}"}}


def test_ratios_hold_over_many_draws_and_each_source_is_covered_before_repeats():
    mix = MixedDataset({"a": Numbers("a", 10), "b": Numbers("b", 1000)}, {"a": 3, "b": 1}, length=20_000, seed=1)
    counts = mix.source_counts()
    assert abs(counts["a"] / 20_000 - 0.75) < 0.02 and abs(counts["b"] / 20_000 - 0.25) < 0.02
    first_a = [mix[i]["id"] for i in range(len(mix)) if mix.draws[i] == 0][:10]
    assert sorted(first_a) == sorted(f"a{k}" for k in range(10))  # a full pass over 'a' before any repeat
    assert mix[5]["meta"]["source"] in ("a", "b")


def test_mixture_is_a_function_of_seed_and_epoch():
    sources = {"a": Numbers("a", 7), "b": Numbers("b", 5)}
    one, two = MixedDataset(sources, {"a": 1, "b": 1}, seed=3), MixedDataset(sources, {"a": 1, "b": 1}, seed=3)
    assert [one[i]["id"] for i in range(len(one))] == [two[i]["id"] for i in range(len(two))]
    other = MixedDataset(sources, {"a": 1, "b": 1}, seed=4)
    assert [one[i]["id"] for i in range(12)] != [other[i]["id"] for i in range(12)]
    before = [one[i]["id"] for i in range(12)]
    one.set_epoch(1)
    assert [one[i]["id"] for i in range(12)] != before


def test_resume_from_seed_rank_and_step_continues_the_same_stream():
    mix = MixedDataset({"a": Numbers("a", 9), "b": Numbers("b", 13)}, {"a": 2, "b": 1}, length=40, seed=0)
    for rank in (0, 1):
        sampler = ResumableSampler(mix, num_replicas=2, rank=rank, shuffle=True, seed=5, drop_last=True)
        sampler.set_position(0, 0)
        full = [mix[i]["id"] for i in sampler]
        resumed = ResumableSampler(mix, num_replicas=2, rank=rank, shuffle=True, seed=5, drop_last=True)
        resumed.set_position(0, 6)  # step 3 of batch size 2
        fresh = MixedDataset({"a": Numbers("a", 9), "b": Numbers("b", 13)}, {"a": 2, "b": 1}, length=40, seed=0)
        assert [fresh[i]["id"] for i in resumed] == full[6:]


def test_ratio_names_must_match_the_sources():
    with pytest.raises(ConfigError, match="missing"):
        MixedDataset({"a": Numbers("a", 3), "b": Numbers("b", 3)}, {"a": 1})


def test_mixture_from_yaml_mixes_images_and_videos_in_one_batch(contract, media_dir, tmp_path):
    videos = write_json(tmp_path / "v.json", [{"id": f"v{i}", "video": "good.mp4",
                                                "conversations": conversation("q", "red")} for i in range(3)])
    images = write_json(tmp_path / "i.json", [{"id": f"i{i}", "image": "still.png",
                                                "conversations": conversation("q", "blue", "<image>")}
                                               for i in range(3)])
    mix = DATASETS.build({"name": "mixture", "seed": 0, "length": 8, "sample_ratio": {"vid": 1, "img": 1},
                          "sources": {"vid": {"name": "llava_instruct", "ann_path": videos, "media_root": str(media_dir)},
                                      "img": {"name": "llava_instruct", "ann_path": images,
                                              "media_root": str(media_dir)}}}, contract=contract)
    samples = [mix[i] for i in range(len(mix))]
    sources = {s["meta"]["source"] for s in samples}
    assert sources == {"vid", "img"}
    batch = mix.collater(samples)
    assert batch["pixel_values"][0].shape == (8, 4, 3, 32, 32)
    assert torch.isfinite(tiny_model()(**batch).loss)
    assert np.isclose(mix.probabilities.sum(), 1.0)


class CountingStream(torch.utils.data.IterableDataset):
    """A stream of (name, i) samples that remembers its position, like a webdataset shard reader."""

    def __init__(self, name, size):
        self.name, self.size, self.position, self.epoch = name, size, 0, 0

    def __iter__(self):
        while self.position < self.size:
            self.position += 1
            yield {"value": (self.name, self.position - 1), "meta": {}}
        self.position = 0

    def __len__(self):
        return self.size

    def set_epoch(self, epoch):
        self.epoch = epoch

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


def test_mixed_stream_ratios_passes_and_resume():
    from vlmkit.data.mixing import MixedStream

    def make():
        return MixedStream({"a": CountingStream("a", 30), "b": CountingStream("b", 10)},
                           sample_ratio={"a": 3, "b": 1}, length=40, seed=1, rank=0)

    stream = make()
    first = [s["meta"]["source"] for s in stream]
    assert len(first) == 40 and 22 <= first.count("a") <= 38
    stream.set_epoch(1)  # a second pass draws again instead of ending at once
    assert len(list(stream)) == 40
    straight = make()
    values = [s["value"] for s in straight]
    resumed = make()
    iterator = iter(resumed)
    head = [next(iterator)["value"] for _ in range(15)]
    state = resumed.state_dict()
    again = make()
    again.load_state_dict(state)
    assert head + [s["value"] for s in again] == values
