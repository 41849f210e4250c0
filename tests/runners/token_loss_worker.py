"""Entry point of the two-process token-weighted loss tests (spawned by test_token_weighted_loss.py)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from tests.runners.varying_answers import train_layout

# name -> run settings; notation processes x micro-batch (x accumulation steps)
TWO_PROCESS_LAYOUTS = {
    "ddp_2x2": {"strategy": "ddp", "batch_size": 2},
    "zero_2x2": {"strategy": "zero", "batch_size": 2},
    "fsdp_2x2": {"strategy": "fsdp", "batch_size": 2},
    "ddp_2x1x2": {"strategy": "ddp", "batch_size": 1, "grad_accum_steps": 2},
}


def main(rank: int, world_size: int, port: int, out: str, loss_normalization: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from vlmkit.runners import distributed

    try:
        for name, run in TWO_PROCESS_LAYOUTS.items():
            train_layout(Path(out), name, loss_normalization=loss_normalization, **run)
    finally:
        distributed.shutdown()
