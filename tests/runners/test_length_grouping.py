"""run.group_by_length: like-length batches (less padding), the same samples per epoch, exact resume, clear errors."""
from __future__ import annotations

import json
import random
import signal

import pytest
import torch
from torch.utils.data import ConcatDataset, DistributedSampler, IterableDataset

from tests.data.dataset_fixtures import tiny_model
from tests.runners.test_resume import interrupt_after, weights
from tests.runners.toy import ToyTokens, make_model, run_cfg
from vlmkit.data.datasets.llava_instruct import LlavaInstructDataset
from vlmkit.errors import ConfigError
from vlmkit.registry import RUNNERS
from vlmkit.runners.length_grouping import dataset_lengths, grouped_order
from vlmkit.runners.sampler import ResumableSampler


class ToyWithLengths(ToyTokens):
    """Toy tokens that report a bimodal text length: one-turn (~20 words) and four-turn (~80 words) samples."""

    def text_lengths(self) -> list[int]:
        rng = random.Random(len(self))
        return [rng.choice([18, 20, 22]) if rng.random() < 0.2 else rng.choice([78, 80, 82]) for _ in range(len(self))]


class TokenStream(IterableDataset):
    def __iter__(self):
        return iter([])

    def __len__(self) -> int:
        return 8


def batches(sampler, batch_size):
    order = list(sampler)
    return [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def padded_fraction(sampler, lengths, batch_size):
    cut = batches(sampler, batch_size)
    return 1 - sum(lengths[i] for b in cut for i in b) / sum(max(lengths[i] for i in b) * len(b) for b in cut)


def test_grouped_order_sorts_each_group_longest_first_and_keeps_every_index():
    lengths = [5, 1, 9, 3, 7, 7, 2, 8]
    out = grouped_order([0, 1, 2, 3, 4, 5, 6, 7], lengths, group_size=3)
    assert out == [2, 0, 1, 4, 5, 3, 7, 6]   # groups [0,1,2] [3,4,5] [6,7]; ties keep their order
    assert sorted(out) == list(range(8))
    with pytest.raises(ValueError, match="group_size"):
        grouped_order([0], [1], 0)
    with pytest.raises(ValueError, match="drop_last"):
        ResumableSampler(ToyWithLengths(8), num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=False,
                         lengths=[1] * 8, group_size=4)


@pytest.mark.parametrize("world_size", [1, 2])
def test_grouped_sampler_deals_the_same_samples_with_far_less_padding(world_size):
    data = ToyWithLengths(1000)
    lengths = data.text_lengths()
    batch, group = 8, 8 * world_size * 10
    plain = [ResumableSampler(data, num_replicas=world_size, rank=r, shuffle=True, seed=3, drop_last=True)
             for r in range(world_size)]
    grouped = [ResumableSampler(data, num_replicas=world_size, rank=r, shuffle=True, seed=3, drop_last=True,
                                lengths=lengths, group_size=group) for r in range(world_size)]
    for s in (*plain, *grouped):
        s.set_position(epoch=1, start=0)
    # Grouping reorders the epoch; it neither drops nor repeats a sample, and ranks stay disjoint.
    assert sorted(i for s in grouped for i in s) == sorted(i for s in plain for i in s)
    assert len({i for s in grouped for i in s}) == sum(len(s) for s in grouped)
    # The plain sampler is torch's DistributedSampler exactly.
    reference = DistributedSampler(data, num_replicas=world_size, rank=0, shuffle=True, seed=3, drop_last=True)
    reference.set_epoch(1)
    assert list(plain[0]) == list(reference)
    for p, g in zip(plain, grouped):
        plain_padding, grouped_padding = padded_fraction(p, lengths, batch), padded_fraction(g, lengths, batch)
        assert plain_padding > 0.12 and grouped_padding < plain_padding / 3
    # At a given step every rank's batch comes from the same length group.
    if world_size == 2:
        for b0, b1 in zip(batches(grouped[0], batch), batches(grouped[1], batch)):
            assert abs(max(lengths[i] for i in b0) - max(lengths[i] for i in b1)) <= 4
    # Another epoch, another order; the same epoch and a start offset resume mid-epoch exactly.
    first = list(grouped[0])
    grouped[0].set_position(epoch=2, start=0)
    assert list(grouped[0]) != first
    grouped[0].set_position(epoch=1, start=16)
    assert list(grouped[0]) == first[16:]


def test_runner_with_grouping_resumes_exactly(tmp_path):
    def build(name, **extra):
        model = make_model()
        runner = RUNNERS.build(run_cfg(max_steps=8, group_by_length=True, **extra), model=model,
                               datasets={"train": ToyWithLengths(24)}, output_dir=str(tmp_path / name))
        return runner, model

    straight, straight_model = build("straight")
    full = straight.train()
    first, _ = build("resumed")
    interrupt_after(first, 3)
    part1 = first.train()
    assert part1["stopped_by_signal"] == signal.SIGTERM
    second, resumed_model = build("resumed", resume_from="latest")
    part2 = second.train()
    assert part1["losses"] + part2["losses"] == full["losses"]
    for name, tensor in weights(straight_model).items():
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name


def test_llava_instruct_lengths_count_words_without_reading_media(tmp_path):
    ann = tmp_path / "conversations.json"
    ann.write_text(json.dumps([
        {"id": "a", "video": "missing.mp4", "conversations": [{"from": "human", "value": "<video>\nWhat colour?"},
                                                              {"from": "gpt", "value": "red"}]},
        {"id": "b", "video": "missing.mp4", "conversations": [{"from": "human", "value": "<video>\nA b c d?"},
                                                              {"from": "gpt", "value": "e f"},
                                                              {"from": "human", "value": "g h"},
                                                              {"from": "gpt", "value": "i"}]}]))
    data = LlavaInstructDataset(str(ann), str(tmp_path), contract=tiny_model().data_contract())
    assert data.text_lengths() == [4, 10]
    assert dataset_lengths(ConcatDataset([data, data])) == [4, 10, 4, 10]


def test_datasets_without_lengths_and_streams_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"run.group_by_length.*ToyTokens cannot report its samples' lengths"):
        RUNNERS.build(run_cfg(group_by_length=True), model=make_model(), datasets={"train": ToyTokens(8)},
                      output_dir=str(tmp_path / "a"))
    with pytest.raises(ConfigError, match=r"run.group_by_length.*streaming training dataset TokenStream"):
        RUNNERS.build(run_cfg(group_by_length=True), model=make_model(), datasets={"train": TokenStream()},
                      output_dir=str(tmp_path / "b"))
