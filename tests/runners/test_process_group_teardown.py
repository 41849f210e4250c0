"""The process group is destroyed before interpreter teardown: a live gloo group there can abort a finished run."""
from __future__ import annotations

import pytest
import torch.distributed as dist

import evaluate
import train
from vlmkit.runners import distributed


def test_init_distributed_registers_a_teardown_at_exit(monkeypatch):
    registered, created = [], []
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: created.append(kw))
    monkeypatch.setattr(distributed.atexit, "register", registered.append)
    env = distributed.init_distributed(distributed.pick_device(distributed.read_env(), "cpu"))
    assert env.rank == 1 and created and created[0]["backend"] == "gloo"
    assert registered == [distributed.shutdown]


@pytest.mark.parametrize("entry, method", [(train, "train"), (evaluate, "evaluate")])
def test_entry_scripts_destroy_the_group_even_when_the_run_fails(monkeypatch, entry, method):
    calls = []

    class FailingRunner:
        def __getattr__(self, name):
            def run():
                calls.append(name)
                raise RuntimeError("the run failed")
            return run

    class Experiment:
        runner = FailingRunner()

    monkeypatch.setattr(entry, "load_experiment", lambda argv, purpose, description: ({}, False))
    monkeypatch.setattr(entry, "assemble", lambda cfg, section: Experiment())
    monkeypatch.setattr(entry.distributed, "shutdown", lambda: calls.append("shutdown"))
    with pytest.raises(RuntimeError, match="the run failed"):
        entry.main([])
    assert calls == [method, "shutdown"]
