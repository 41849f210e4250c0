"""The loop: accumulation, frozen parameters, sanity checks, non-finite losses, evaluation and best checkpoint."""
from __future__ import annotations

import json

import pytest
import torch

from tests.runners.toy import ToyTokens, make_model, run_cfg
from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import RUNNERS
from vlmkit.runners import checkpoint as ckpt
from vlmkit.runners.runner import TrainingError


def build(tmp_path, model=None, datasets=None, **overrides):
    model = model or make_model()
    model.dropout.p = 0.0
    datasets = datasets or {"train": ToyTokens(16, random_mask=False)}
    return RUNNERS.build(run_cfg(**overrides), model=model, datasets=datasets, output_dir=str(tmp_path)), model


def test_accumulation_2x2_equals_batch_4(tmp_path):
    _, accumulated = build(tmp_path / "a", batch_size=2, grad_accum_steps=2, max_steps=3, shuffle=False)
    _.train()
    _, whole = build(tmp_path / "b", batch_size=4, max_steps=3, shuffle=False)
    _.train()
    for (name, a), b in zip(accumulated.named_parameters(), whole.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_frozen_parameters_get_no_gradient_and_stay_put(tmp_path):
    runner, model = build(tmp_path, max_steps=2)
    before = model.frozen.weight.detach().clone()
    runner.train()
    assert model.frozen.weight.grad is None and torch.equal(model.frozen.weight, before)
    assert model.head.weight.grad is None  # zeroed (set to None) after the step


def test_zero_supervision_batch_is_an_error(tmp_path):
    runner, _ = build(tmp_path, datasets={"train": ToyTokens(16, supervised=False)})
    with pytest.raises(DataError, match="0 supervised tokens"):
        runner.train()


def test_empty_dataset_and_missing_split_are_errors(tmp_path):
    with pytest.raises(DataError, match="'train' has 0 records"):
        build(tmp_path, datasets={"train": ToyTokens(0)})
    with pytest.raises(DataError, match="split 'val' is not among the built datasets"):
        build(tmp_path, valid_splits=["val"])


class NaNAt:
    """A task wrapper whose loss turns NaN on the given call."""

    def __init__(self, task, call):
        self.task, self.call, self.calls = task, call, 0

    def __getattr__(self, name):
        return getattr(self.task, name)

    def train_step(self, model, batch):
        self.calls += 1
        out = self.task.train_step(model, batch)
        return {"loss": out["loss"] * float("nan")} if self.calls == self.call else out


def test_nonfinite_loss_stops_with_the_step_named_and_keeps_the_last_checkpoint(tmp_path):
    runner, _ = build(tmp_path, max_steps=4, save_every=1)
    runner.task = NaNAt(runner.task, call=3)
    with pytest.raises(TrainingError, match="non-finite loss .* at step 2, epoch 0"):
        runner.train()
    assert ckpt.latest(tmp_path / "checkpoints").name == "step_00000002"


def test_nonfinite_loss_can_be_skipped(tmp_path):
    runner, _ = build(tmp_path, max_steps=3, nonfinite_loss="skip")
    runner.task = NaNAt(runner.task, call=2)
    summary = runner.train()
    assert summary["skipped_steps"] == 1 and summary["global_step"] == 3
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


def test_evaluation_tracks_the_monitored_metric_and_saves_the_best(tmp_path):
    datasets = {"train": ToyTokens(16, random_mask=False), "val": ToyTokens(6, seed=1, random_mask=False)}
    runner, _ = build(tmp_path, datasets=datasets, max_steps=4, eval_every=2, valid_splits=["val"],
                      monitor="val/loss", monitor_mode="min", loggers=["jsonl", "console"])
    summary = runner.train()
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [l for l in lines if "val/loss" in l]
    assert [l["step"] for l in evals] == [2, 4]
    assert summary["best"] == min(l["val/loss"] for l in evals)
    assert evals[0]["val/perplexity"] == pytest.approx(2.718281828 ** evals[0]["val/loss"], rel=1e-6)
    best = ckpt.read_manifest(tmp_path / "checkpoints" / "best")
    assert best["metrics"]["val/loss"] == summary["best"]
    assert (tmp_path / "checkpoints" / "latest").read_text() == "step_00000004"


def test_unknown_monitor_metric_names_the_available_ones(tmp_path):
    datasets = {"train": ToyTokens(16), "val": ToyTokens(4)}
    runner, _ = build(tmp_path, datasets=datasets, max_steps=1, valid_splits=["val"], monitor="val/acc")
    with pytest.raises(ConfigError, match="'val/acc' is not among the evaluation metrics: val/loss, val/perplexity"):
        runner.train()


def test_config_errors_are_caught_before_building(tmp_path):
    errors = RUNNERS.check(run_cfg(max_step=3, precision="fp8"), "run")
    text = "\n".join(map(str, errors))
    assert "unknown key 'max_step'" in text and "Did you mean 'max_steps'" in text
    assert "run.precision" in text and "'fp32', 'bf16', 'fp16'" in text
    with pytest.raises(ConfigError, match="exactly one of max_epochs and max_steps"):
        RUNNERS.build({**run_cfg(), "max_epochs": 1}, model=make_model(), datasets={"train": ToyTokens(8)},
                      output_dir=str(tmp_path))


def test_crash_while_writing_leaves_the_previous_checkpoint_resumable(tmp_path, monkeypatch):
    runner, _ = build(tmp_path, max_steps=2, save_every=1)
    original, calls = ckpt._torch_save, [0]

    def dying_save(obj, path):  # the process dies half-way through writing checkpoint 2
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt("killed")
        original(obj, path)

    monkeypatch.setattr(ckpt, "_torch_save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    monkeypatch.setattr(ckpt, "_torch_save", original)
    assert ckpt.latest(tmp_path / "checkpoints").name == "step_00000001"
    resumed, _ = build(tmp_path, max_steps=2, save_every=1, resume_from="latest")
    assert resumed.train()["global_step"] == 2
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))  # the half-written directory was cleared


def test_tensorboard_logger_needs_the_package(monkeypatch):
    import importlib.util

    from vlmkit.registry import LOGGERS
    real = importlib.util.find_spec  # tensorboard is a dev dependency: hide it as a machine without it would
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ConfigError, match="pip install"):
        LOGGERS.build("tensorboard")
