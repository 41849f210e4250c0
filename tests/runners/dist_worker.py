"""Entry point of the two-process tests (spawned by test_distributed.py); writes results under ``out``."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import torch

from tests.runners.toy import ToyTokens, make_model, run_cfg


def train(out: Path, name: str, **overrides) -> dict:
    from vlmkit.registry import RUNNERS

    model = make_model()
    model.dropout.p = 0.0  # one process vs two: the dropout masks would differ
    # No random label masks: the processes' RNGs differ from the single process's.
    runner = RUNNERS.build(run_cfg(**overrides), model=model, datasets={"train": ToyTokens(16, random_mask=False)},
                           output_dir=str(out / name))
    summary = runner.train()
    if overrides.get("strategy") == "fsdp":  # sharded: gather the full trainable tensors on rank 0 (a collective)
        state = runner.strategy.trainable_state(runner.model)
    else:
        state = {n: p.detach().clone() for n, p in runner.strategy.unwrap(runner.model).named_parameters()}
    if overrides.get("strategy") != "fsdp" or runner.env.rank == 0:
        torch.save({"weights": state, "losses": summary["losses"]}, out / f"{name}_rank{runner.env.rank}.pt")
    return summary


def interrupted_fsdp(out: Path) -> None:
    """FSDP: stop on SIGTERM after one step, resume, finish; compare with an uninterrupted FSDP run."""
    from vlmkit.registry import RUNNERS
    from vlmkit.runners.checkpoint import latest, load_tensors

    common = {"strategy": "fsdp", "batch_size": 2, "max_steps": 3}
    runs = {}
    for name in ("fsdp_straight", "fsdp_resumed"):
        model = make_model()
        runner = RUNNERS.build(run_cfg(**common), model=model, datasets={"train": ToyTokens(16)},
                               output_dir=str(out / name))
        if name == "fsdp_resumed":
            original = runner.task.train_step

            def train_step(model, batch, calls=[0]):  # noqa: B006 - a counter local to this runner
                calls[0] += 1
                if calls[0] == 1:
                    os.kill(os.getpid(), signal.SIGTERM)
                return original(model, batch)

            runner.task.train_step = train_step
            first = runner.train()
            assert first["global_step"] == 1, first
            runner = RUNNERS.build(run_cfg(resume_from="latest", **common), model=make_model(),
                                   datasets={"train": ToyTokens(16)}, output_dir=str(out / name))
            runs[name] = first["losses"] + runner.train()["losses"]
        else:
            runs[name] = runner.train()["losses"]
    if int(os.environ["RANK"]) == 0:
        torch.save({"losses": runs,
                    "straight": load_tensors(latest(out / "fsdp_straight" / "checkpoints")),
                    "resumed": load_tensors(latest(out / "fsdp_resumed" / "checkpoints"))},
                   out / "fsdp_resume_rank0.pt")


def main(rank: int, world_size: int, port: int, out: str, scenarios: list[str]) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    out = Path(out)
    from vlmkit.runners import distributed
    try:
        if "ddp" in scenarios:  # global batch 4 = 2 processes x 2, accumulation 2 x 1 on each
            train(out, "ddp", strategy="ddp", batch_size=1, grad_accum_steps=2, max_steps=3)
        if "zero" in scenarios:
            train(out, "zero", strategy="zero", batch_size=2, max_steps=3)
        if "fsdp" in scenarios:  # the same global batch as the single process: 2 processes x 2
            train(out, "fsdp", strategy="fsdp", batch_size=2, max_steps=3)
        if "fsdp_resume" in scenarios:
            interrupted_fsdp(out)
    finally:
        distributed.shutdown()
