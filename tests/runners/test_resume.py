"""Exact resume: N steps straight == N/2 steps + resume + N/2 steps (weights and losses, bit for bit)."""
from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from tests.runners.toy import ToyTokens, make_model, run_cfg
from vlmkit.registry import RUNNERS
from vlmkit.runners import checkpoint as ckpt


def build(tmp_path, name, **overrides):
    model = make_model()
    runner = RUNNERS.build(run_cfg(**overrides), model=model, datasets={"train": ToyTokens(20)},
                           output_dir=str(tmp_path / name), config={"run": {"note": "test"}})
    return runner, model


def interrupt_after(runner, steps):
    """Send this process SIGTERM during the last micro-batch of optimizer step ``steps`` (a cluster time limit)."""
    original, calls = runner.task.train_step, [0]

    def train_step(model, batch):
        calls[0] += 1
        if calls[0] == steps * runner.grad_accum_steps:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(model, batch)

    runner.task.train_step = train_step


def weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("overrides", [
    {"max_steps": 6},                                           # 20 samples / bs 4 = 5 batches: stop mid-epoch 0
    {"max_steps": 10, "grad_accum_steps": 2, "clip_grad_norm": 0.5},  # accumulation: 2 steps/epoch, mid-epoch 2
    {"max_epochs": 2, "batch_size": 5, "precision": "bf16", "save_every": 2},  # epoch-based, stop at the boundary
    {"max_steps": 4, "precision": "fp16", "clip_grad_norm": 1.0},  # GradScaler state is resumed too
])
def test_resume_is_exact(tmp_path, overrides):
    straight, straight_model = build(tmp_path, "straight", **overrides)
    full = straight.train()

    total = full["global_step"]
    first, _ = build(tmp_path, "resumed", **overrides)
    interrupt_after(first, total // 2)
    part1 = first.train()
    assert part1["stopped_by_signal"] == signal.SIGTERM and part1["global_step"] == total // 2
    second, resumed_model = build(tmp_path, "resumed", resume_from="latest", **overrides)
    part2 = second.train()

    assert part1["losses"] + part2["losses"] == full["losses"]
    assert len(full["losses"]) == total
    for name, tensor in weights(straight_model).items():
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name
    assert straight.optimizer.param_groups[0]["lr"] == second.optimizer.param_groups[0]["lr"]


def test_checkpoint_contents(tmp_path):
    runner, model = build(tmp_path, "run", max_steps=2, save_every=1, keep_last=1)
    runner.train()
    root = tmp_path / "run" / "checkpoints"
    assert (root / "latest").read_text() == "step_00000002"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_00000002"]  # keep_last pruned step 1
    manifest = ckpt.read_manifest(root / "step_00000002")
    assert manifest["config"] == {"run": {"note": "test"}}
    assert manifest["progress"]["global_step"] == 2
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(manifest["tensors"]) == trainable and "frozen.weight" not in manifest["tensors"]
    assert manifest["tensors"]["head.weight"] == {"shape": [17, 8], "dtype": "float32"}
    state = torch.load(root / "step_00000002" / "trainer_state.pt", weights_only=True)
    assert {"optimizer", "scheduler", "scaler", "progress"} <= set(state)
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2]
    report = json.loads((tmp_path / "run" / "startup_report.json").read_text())
    assert report["parameters"]["frozen"] == {"trainable": 0, "frozen": 72}
    assert report["dataset_sizes"] == {"train": 20}


def test_strict_resume_reports_a_readable_diff(tmp_path):
    runner, _ = build(tmp_path, "run", max_steps=1)
    runner.train()
    model = make_model(frozen=False)  # now 'frozen' is trainable: the checkpoint lacks it
    resumed = RUNNERS.build(run_cfg(max_steps=2, resume_from="latest"), model=model,
                            datasets={"train": ToyTokens(20)}, output_dir=str(tmp_path / "run"))
    with pytest.raises(ckpt.CheckpointError) as err:
        resumed.train()
    assert "missing (in the model, not in the checkpoint): frozen.weight [8, 8]" in str(err.value)


def test_load_trainable_rejects_shape_mismatch(tmp_path):
    runner, model = build(tmp_path, "run", max_steps=1)
    runner.train()
    path = ckpt.latest(tmp_path / "run" / "checkpoints")
    fresh = make_model(seed=1)
    ckpt.load_trainable(fresh, path)
    assert torch.equal(fresh.head.weight, model.head.weight)
    from tests.runners.toy import ToyLM
    with pytest.raises(ckpt.CheckpointError, match=r"shape mismatch: embed.weight: checkpoint \[17, 8\] vs model \[17, 4\]"):
        ckpt.load_trainable(ToyLM(width=4), path)


def test_resume_auto_starts_fresh_and_latest_requires_a_checkpoint(tmp_path):
    runner, _ = build(tmp_path, "fresh", max_steps=1, resume_from="auto")
    assert runner.train()["global_step"] == 1
    runner, _ = build(tmp_path, "none", max_steps=1, resume_from="latest")
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint"):
        runner.train()
