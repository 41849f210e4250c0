"""Batches a dataset skipped entirely (collater -> None): left out, counted, never fed to the model; the
dataset hooks (set_epoch, set_output_dir, write_bad_samples) are called; two DDP processes stay in step."""
from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.runners.toy import make_model, run_cfg
from tests.runners.toy_skipping import SkippingTokens
from vlmkit.registry import RUNNERS


def build(tmp_path, dataset, **overrides):
    model = make_model()
    model.dropout.p = 0.0
    runner = RUNNERS.build(run_cfg(shuffle=False, batch_size=2, **overrides), model=model,
                           datasets={"train": dataset}, output_dir=str(tmp_path))
    return runner, model


def test_a_skipped_micro_batch_is_left_out_of_the_step(tmp_path):
    # batches of 2 in order: b0 = (0, 1), b1 = (2, 3), ...; with accumulation 2, step 1 is (b0, b1).
    # b1 skipped: the step is the mean over b0 alone, the same as (b0, copy of b0).
    skipped, model = build(tmp_path / "skip", SkippingTokens(8, bad=(2, 3)), grad_accum_steps=2, max_steps=2)
    summary = skipped.train()
    reference, ref_model = build(tmp_path / "ref", SkippingTokens(8, copy={2: 0, 3: 1}), grad_accum_steps=2,
                                 max_steps=2)
    expected = reference.train()
    assert summary["losses"] == expected["losses"]
    for (name, a), b in zip(model.named_parameters(), ref_model.parameters()):
        assert torch.equal(a, b), name
    assert summary["skipped_batches"] == 1 and summary["empty_steps"] == 0
    assert summary["bad_samples"] == {"train": 2}


def test_a_step_without_any_batch_makes_no_update_and_every_hook_runs(tmp_path):
    dataset = SkippingTokens(8, bad=(2, 3))
    runner, _ = build(tmp_path, dataset, max_epochs=2)
    calls = []
    original = runner.task.train_step
    runner.task.train_step = lambda m, batch: calls.append(batch["input_ids"].shape[0]) or original(m, batch)
    summary = runner.train()
    assert summary["global_step"] == 6 and summary["empty_steps"] == 2 and summary["skipped_batches"] == 2
    assert calls == [2] * 6  # never an empty batch
    assert dataset.epochs == [0, 1]
    assert dataset.output_dirs == [str(tmp_path / "train")]
    assert dataset.written == 1 and summary["bad_samples"] == {"train": 2}  # samples, not failed reads
    listed = json.loads((tmp_path / "train" / "bad_samples.json").read_text())["skipping_tokens"]
    assert listed["count"] == 2 and {s["id"] for s in listed["samples"]} == {"2", "3"}
    assert listed["events"] == 4 and [s["events"] for s in listed["samples"]] == [2, 2]  # once per epoch
    assert (tmp_path / "train" / "bad_samples.jsonl").read_text().count("\n") == 4
    assert "skipped_batches" in json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])


def test_evaluation_skips_empty_batches(tmp_path):
    dataset = SkippingTokens(8, bad=(0, 1))
    runner, _ = build(tmp_path, dataset, valid_splits=["train"], max_steps=1, eval_batch_size=2)
    summary = runner.train()
    assert summary["eval_skipped_batches"] == {"train": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_agree_on_steps_when_one_rank_has_no_batch(tmp_path):
    from tests.runners.skip_worker import main

    mp.spawn(main, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name, tensor in rank0["weights"].items():
        assert torch.equal(tensor, rank1["weights"][name]), name
    for result in (rank0, rank1):
        # 8 samples, 1 per rank and step: step 1 has rank 0's sample only (rank 1 borrows a stand-in),
        # step 2 none at all (no update), steps 3 and 4 both.
        assert result["summary"]["global_step"] == 3 and result["summary"]["empty_steps"] == 1
        assert result["summary"]["skipped_batches"] == 3
        assert result["summary"]["eval_skipped_batches"] == {"train": 3}
    assert rank0["summary"]["losses"] == rank1["summary"]["losses"]  # the mean over every real micro-batch
    assert rank0["summary"]["losses"][0] == pytest.approx(rank0["first_loss_rank0_sample"], abs=1e-6)
