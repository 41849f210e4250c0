"""pack_batch (run.packing): rows of at most max_length tokens, position ids restarting per conversation, the same
supervised tokens, per-sample entries in the packed order, and clear errors for what cannot be packed."""
from __future__ import annotations

import pickle

import pytest
import torch

from vlmkit.contracts import IGNORE_INDEX
from vlmkit.data.collate import collate_samples
from vlmkit.data.packing import PackedCollate, balanced_rows, first_fit_decreasing, pack_batch
from vlmkit.errors import DataError
from vlmkit.tasks.base import supervised_tokens

LENGTHS = [5, 9, 3, 7, 2]


def samples(lengths=LENGTHS):
    """Sample i: tokens 100*i+1.., its first token supervised (so the packer must stop it being a target),
    two frames worth i, an instruction and a feature per sample."""
    out = []
    for i, n in enumerate(lengths):
        ids = torch.arange(n) + 100 * i + 1
        labels = ids.clone()
        labels[1] = IGNORE_INDEX if n > 2 else labels[1]
        out.append({"input_ids": ids, "labels": labels, "pixel_values": [torch.full((2, 3, 4, 4), float(i))],
                    "id": f"s{i}", "meta": {"id": f"s{i}"}, "instruction_ids": torch.arange(i + 1)})
    return out


def batch_of(lengths=LENGTHS):
    batch = collate_samples(samples(lengths), pad_token_id=0)
    batch["features"] = torch.arange(len(lengths)).float()[:, None].repeat(1, 6)
    return batch


def test_first_fit_decreasing_fills_rows_longest_first():
    rows = first_fit_decreasing(LENGTHS, 12)
    assert rows == [[1, 2], [3, 0], [4]]  # 9+3, 7+5, 2
    assert all(sum(LENGTHS[i] for i in row) <= 12 for row in rows)


def test_balanced_rows_use_as_many_rows_filled_evenly():
    """The batch is padded to its longest row: 9 / 9 / 8 tokens beat first-fit's 12 / 12 / 2."""
    assert balanced_rows(LENGTHS, 12) == [[1], [3, 4], [0, 2]]
    assert balanced_rows([6, 6, 5, 5, 5, 5], 16) == [[0, 4], [1, 5], [2, 3]]  # 11 / 11 / 10, not 12 / 15 / 5
    assert balanced_rows([7, 6, 5, 4, 4], 13) == first_fit_decreasing([7, 6, 5, 4, 4], 13)  # even would overflow


def test_rows_hold_whole_conversations_with_restarting_positions():
    batch = batch_of()
    packed = pack_batch(batch, max_length=12, pad_token_id=0)
    assert "attention_mask" not in packed and packed["input_ids"].shape == (3, 9)
    assert [m["id"] for m in packed["meta"]] == ["s1", "s3", "s4", "s0", "s2"]
    for sample, row, start in (("s1", 0, 0), ("s3", 1, 0), ("s4", 1, 7), ("s0", 2, 0), ("s2", 2, 5)):
        i = int(sample[1:])
        n = LENGTHS[i]
        assert packed["input_ids"][row, start:start + n].tolist() == (torch.arange(n) + 100 * i + 1).tolist()
        assert packed["position_ids"][row, start:start + n].tolist() == list(range(n))
        assert packed["labels"][row, start] == IGNORE_INDEX  # never a target: unpacked it starts a row
        assert packed["labels"][row, start + 2:start + n].tolist() == (torch.arange(2, n) + 100 * i + 1).tolist()
    assert packed["position_ids"][2].tolist() == [*range(5), *range(3), 0]  # the padding tail: a segment of its own
    assert packed["labels"][2, 8] == IGNORE_INDEX and packed["input_ids"][2, 8] == 0


def test_supervised_tokens_are_those_of_the_unpacked_batch():
    batch = batch_of()
    packed = pack_batch(batch, max_length=12, pad_token_id=0)
    assert supervised_tokens(packed["labels"], False) == supervised_tokens(batch["labels"], False) == 17


def test_per_sample_entries_follow_the_packed_order():
    batch = batch_of()
    packed = pack_batch(batch, max_length=12, pad_token_id=0)
    order = [int(m["id"][1:]) for m in packed["meta"]]
    assert packed["pixel_values"][0][:, 0, 0, 0, 0].tolist() == [float(i) for i in order]
    assert packed["features"][:, 0].tolist() == [float(i) for i in order]
    assert packed["instruction_ids"].tolist() == batch["instruction_ids"][order].tolist()
    assert packed["instruction_mask"].tolist() == batch["instruction_mask"][order].tolist()


def test_a_conversation_longer_than_max_length_names_the_setting_and_the_sample():
    with pytest.raises(DataError, match=r"run\.packing\.max_length=8 is shorter than conversation\(s\) \['s1'\] of "
                                        r"up to 9 tokens .* set run\.packing\.max_length to 9 or more"):
        pack_batch(batch_of(), max_length=8, pad_token_id=0)


def test_an_entry_that_is_not_per_sample_is_refused_by_name():
    batch = batch_of()
    batch["temperature"] = torch.tensor(0.5)
    with pytest.raises(DataError, match=r"'temperature' \(\(\)\) is not one value per sample"):
        pack_batch(batch, max_length=12, pad_token_id=0)


def test_the_packing_collater_is_picklable_and_keeps_skipped_batches_skipped():
    collate = pickle.loads(pickle.dumps(PackedCollate(collate_samples_right, 12, 0)))
    assert collate([None, None]) is None
    assert collate(samples())["input_ids"].shape[0] == 3


def collate_samples_right(items):
    return collate_samples(items, pad_token_id=0)
