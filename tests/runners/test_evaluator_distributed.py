"""Two evaluation processes (gloo on CPU) give the same merged predictions and metrics as one."""
from __future__ import annotations

import json
import socket

import torch.multiprocessing as mp

from tests.tasks.eval_worker import main
from tests.tasks.tiny import TinyVideoQA, mc_records, tiny_model
from vlmkit.registry import RUNNERS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    # One process first: it imports everything, so the forked workers start in a second instead of re-importing.
    model, cfg = tiny_model(tmp_path / "cfg")
    data = {"mc": TinyVideoQA(model.data_contract(), mc_records(5))}
    single = RUNNERS.build({"name": "evaluator", "tasks": {"name": "multiple_choice"}, "max_new_tokens": 3,
                            "batch_size": 2, "output_dir": str(tmp_path / "one")},
                           model=model, datasets=data, config=cfg).evaluate()
    mp.start_processes(main, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    # the 5 samples were dealt 3 / 2 to the ranks, each writing its own file
    assert [(tmp_path / f"rank{r}_lines.txt").read_text() for r in (0, 1)] == ["3", "2"]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["world_size"] == 2 and single["world_size"] == 1
    assert two["datasets"]["mc"]["metrics"] == single["datasets"]["mc"]["metrics"]
    merged_two = (tmp_path / "two" / "predictions" / "mc.jsonl").read_text()
    merged_one = (tmp_path / "one" / "predictions" / "mc.jsonl").read_text()
    assert merged_two == merged_one and len(merged_one.splitlines()) == 5
