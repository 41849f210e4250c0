"""Entry point of the two-process evaluation test (spawned by tests/runners/test_evaluator_distributed.py)."""
from __future__ import annotations

import os
from pathlib import Path


def main(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    import torch

    torch.set_num_threads(1)
    from tests.tasks.tiny import TinyVideoQA, mc_records, tiny_model
    from vlmkit.registry import RUNNERS
    from vlmkit.runners import distributed

    out = Path(out)
    try:
        model, cfg = tiny_model(out / f"cfg{rank}")
        data = {"mc": TinyVideoQA(model.data_contract(), mc_records(5))}
        runner = RUNNERS.build({"name": "evaluator", "tasks": {"name": "multiple_choice"}, "max_new_tokens": 3,
                                "batch_size": 2, "output_dir": str(out / "two")},
                               model=model, datasets=data, config=cfg)
        results = runner.evaluate()
        shard = out / "two" / "predictions" / "mc" / f"rank{rank:03d}.jsonl"
        (out / f"rank{rank}_lines.txt").write_text(str(len(shard.read_text().splitlines())))
        assert results["world_size"] == world_size  # every rank receives rank 0's results
    finally:
        distributed.shutdown()
