"""Entry point of the two-process skipped-batch test: rank 1 lacks a batch, then both lack one."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from tests.runners.toy import make_model, run_cfg
from tests.runners.toy_skipping import SkippingTokens


def main(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from vlmkit.registry import RUNNERS
    from vlmkit.runners import distributed

    try:
        model = make_model()
        model.dropout.p = 0.0
        first = model(**{k: v[None] for k, v in SkippingTokens(8)[0].items()})  # rank 0's first sample
        dataset = SkippingTokens(8, bad=(1, 2, 3))  # rank r reads r, r+2, ...: (0, 1) (2, 3) (4, 5) (6, 7)
        runner = RUNNERS.build(run_cfg(strategy="ddp", shuffle=False, batch_size=1, max_epochs=1,
                                       valid_splits=["train"], eval_batch_size=1),
                               model=model, datasets={"train": dataset}, output_dir=str(Path(out) / "run"))
        summary = runner.train()
        weights = {n: p.detach().clone() for n, p in runner.strategy.unwrap(runner.model).named_parameters()}
        torch.save({"weights": weights, "summary": summary, "first_loss_rank0_sample": float(first["loss"])},
                   Path(out) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()
