"""Training from a stream (webdataset shards, an IterableDataset): no sampler, an epoch is one pass, the
position saved is the dataset's state_dict, and a SIGTERM + resume continues exactly."""
from __future__ import annotations

import os
import signal

import pytest
import torch

from tests.runners.stream_fixtures import tiny_video_llm, write_shards
from vlmkit.registry import DATASETS, RUNNERS
from vlmkit.runners import checkpoint as ckpt


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner_shards")
    return root, write_shards(root, shards=2, per_shard=4, bad=((1, 2),))  # 7 usable samples


def build(tmp_path, shards, name, **overrides):
    root, pattern = shards
    model = tiny_video_llm()
    dataset = DATASETS.build({"name": "webdataset_captions", "shards": pattern, "root": str(root),
                              "backend": "pyav"}, contract=model.data_contract())
    cfg = {"name": "trainer", "scheduler": {"name": "linear_warmup_cosine", "init_lr": 1e-3, "warmup_steps": 1},
           "strategy": "single", "loggers": ["jsonl"], "batch_size": 2, "log_every": 1, **overrides}
    runner = RUNNERS.build(cfg, model=model, datasets={"train": dataset}, output_dir=str(tmp_path / name))
    return runner, model, dataset


def interrupt_after(runner, steps):
    original, calls = runner.task.train_step, [0]

    def train_step(model, batch):
        calls[0] += 1
        if calls[0] == steps * runner.grad_accum_steps:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(model, batch)

    runner.task.train_step = train_step


def straight_and_resumed(tmp_path, shards, stop, **overrides):
    straight, straight_model, _ = build(tmp_path, shards, "straight", **overrides)
    full = straight.train()
    first, _, _ = build(tmp_path, shards, "resumed", **overrides)
    interrupt_after(first, stop)
    part1 = first.train()
    assert part1["stopped_by_signal"] == signal.SIGTERM and part1["global_step"] == stop
    second, resumed_model, dataset = build(tmp_path, shards, "resumed", resume_from="latest", **overrides)
    part2 = second.train()
    assert part1["losses"] + part2["losses"] == full["losses"]
    for name, tensor in straight_model.named_parameters():
        assert torch.equal(tensor, resumed_model.get_parameter(name)), name
    return full, part1, part2, dataset


def test_stream_resumes_exactly_across_passes(tmp_path, shards):
    # No workers: one stream of 7 samples = 3 batches of 2 per pass; 7 steps run into the third pass and the
    # stop (step 4) falls inside the second.
    full, _, part2, dataset = straight_and_resumed(tmp_path, shards, stop=4, max_steps=7)
    assert len(full["losses"]) == 7 and full["epoch"] == 2 and part2["epoch"] == 2
    saved = torch.load(ckpt.latest(tmp_path / "resumed" / "checkpoints") / "trainer_state.pt", weights_only=True)
    assert saved["data"][0]["epoch"] == 2 and saved["data"][0]["cursors"]  # the position is the stream's state
    # the caption-less sample, met in each pass that reached it, is one bad sample
    assert full["bad_samples"]["train"] == 1
    assert {b["id"] for b in dataset.bad_samples()} == {"s1_2"}
    assert (tmp_path / "resumed" / "train" / "bad_samples.json").is_file()


def test_stream_with_max_epochs_counts_passes(tmp_path, shards):
    runner, _, _ = build(tmp_path, shards, "epochs", max_epochs=2, grad_accum_steps=1)
    summary = runner.train()
    assert summary["epoch"] == 2 and summary["global_step"] == 6  # 3 steps per pass


def test_stream_resumes_exactly_with_two_workers(tmp_path, shards):
    # Two workers, one shard each: worker 0 has 4 samples (2 batches), worker 1 has 3 (1 batch); a pass is
    # 3 batches, alternating workers.  The stop falls on a whole round (after one batch of each worker).
    full, *_ = straight_and_resumed(tmp_path, shards, stop=2, max_steps=5, num_workers=2)
    assert len(full["losses"]) == 5
