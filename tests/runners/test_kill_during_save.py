"""A process SIGKILLed while writing a checkpoint leaves the previous one loadable, and resuming from it
ends where an uninterrupted run ends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.runners.toy import ToyTokens, make_model, run_cfg
from vlmkit.registry import RUNNERS
from vlmkit.runners import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[2]


def run_until_paused(out: Path, mode: str) -> None:
    marker = out.parent / f"{mode}.paused"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen([sys.executable, "-m", "tests.runners.kill_worker", str(out), mode, str(marker)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if process.poll() is not None:
                raise AssertionError(f"the trainer ended before pausing:\n{process.stdout.read().decode()}")
            if time.monotonic() > deadline:
                raise AssertionError("the trainer never reached the pause point")
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def train(out: Path, **overrides) -> tuple[dict, torch.nn.Module]:
    torch.set_num_threads(1)  # the same kernels as the killed process
    model = make_model()
    runner = RUNNERS.build(run_cfg(max_steps=4, save_every=1, keep_last=2, **overrides), model=model,
                           datasets={"train": ToyTokens(20)}, output_dir=str(out))
    return runner.train(), model


@pytest.mark.parametrize("mode", ["tmp", "publish"])
def test_sigkill_while_saving_keeps_the_previous_checkpoint(tmp_path, mode):
    threads = torch.get_num_threads()
    try:
        out = tmp_path / "run"
        run_until_paused(out, mode)
        root = out / "checkpoints"
        previous = ckpt.latest(root)
        assert previous is not None and previous.name == "step_00000001"
        assert ckpt.read_manifest(previous)["progress"]["global_step"] == 1
        assert set(ckpt.load_tensors(previous)) == {"embed.weight", "projector.weight", "projector.bias",
                                                    "norm.weight", "norm.bias", "head.weight", "head.bias"}
        if mode == "tmp":
            assert any(p.name.startswith(".tmp-step_00000002") for p in root.iterdir())  # the torn write
        else:
            assert (root / "step_00000002").is_dir()  # complete, but 'latest' was never moved to it

        resumed, resumed_model = train(out, resume_from="latest")
        straight, straight_model = train(tmp_path / "straight")
    finally:
        torch.set_num_threads(threads)
    assert resumed["global_step"] == 4 and resumed["losses"] == straight["losses"][1:]
    for name, tensor in straight_model.named_parameters():
        assert torch.equal(tensor, resumed_model.get_parameter(name)), name
    assert ckpt.latest(root).name == "step_00000004"
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # crash leftovers cleared
