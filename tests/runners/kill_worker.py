"""Run by test_kill_during_save.py in a subprocess: train with a checkpoint every step, and pause for ever
while writing the step-2 checkpoint (``tmp``: half-way through its weights file; ``publish``: after it was
renamed into place, before the 'latest' pointer moved), after creating ``marker``.  The parent SIGKILLs it."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from tests.runners.toy import ToyTokens, make_model, run_cfg

PAUSE_AT = "step_00000002"


def pause(marker: Path) -> None:
    marker.write_text("paused")
    time.sleep(600)


def main(out: str, mode: str, marker: str) -> None:
    import safetensors.torch

    from vlmkit.registry import RUNNERS
    from vlmkit.runners import checkpoint as ckpt

    torch.set_num_threads(1)
    marker = Path(marker)
    if mode == "tmp":
        real_save = safetensors.torch.save_file

        def save_file(tensors, filename, metadata=None):
            real_save(tensors, filename, metadata=metadata)
            if PAUSE_AT in filename:
                data = Path(filename).read_bytes()
                Path(filename).write_bytes(data[: len(data) // 2])
                pause(marker)

        safetensors.torch.save_file = save_file
    else:
        real_publish = ckpt.CheckpointWriter._publish

        def publish(self, tmp, final, update_latest):
            if final.name == PAUSE_AT:
                tmp.rename(final)
                pause(marker)
            real_publish(self, tmp, final, update_latest)

        ckpt.CheckpointWriter._publish = publish
    runner = RUNNERS.build(run_cfg(max_steps=4, save_every=1, keep_last=2), model=make_model(),
                           datasets={"train": ToyTokens(20)}, output_dir=out)
    runner.train()


if __name__ == "__main__":
    main(*sys.argv[1:])
