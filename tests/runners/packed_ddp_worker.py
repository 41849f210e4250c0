"""Entry point of the two-process packing test (spawned by test_packed_training.py): DDP 2 x 2 on packed rows."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from tests.runners.varying_answers import train_layout


def main(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from vlmkit.runners import distributed

    try:
        train_layout(Path(out), "ddp_packed", strategy="ddp", batch_size=2, packing={"max_length": 120})
    finally:
        distributed.shutdown()
