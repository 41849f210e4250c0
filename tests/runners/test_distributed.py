"""Two processes on CPU (gloo): DDP and ZeRO match one process with the same global batch; FSDP resumes."""
from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.runners.dist_worker import main, train


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    mp.spawn(main, args=(2, free_port(), str(out), ["ddp", "zero"]), nprocs=2, join=True)
    # The same global batch (4) in one process.
    train(out, "single", strategy="single", batch_size=4, max_steps=3)
    return out


def load(out, name, rank=0):
    return torch.load(out / f"{name}_rank{rank}.pt", weights_only=True)


@pytest.mark.parametrize("strategy", ["ddp", "zero"])
def test_two_processes_equal_one_with_the_same_global_batch(two_process_results, strategy):
    out = two_process_results
    rank0, rank1, single = load(out, strategy, 0), load(out, strategy, 1), load(out, "single")
    for name, tensor in rank0["weights"].items():
        assert torch.equal(tensor, rank1["weights"][name]), f"{name} differs between ranks: gradients not synced"
        assert torch.allclose(tensor, single["weights"][name], atol=1e-6), name
    assert not torch.equal(rank0["weights"]["head.weight"], torch.zeros(1))
    # Each rank's loss covers its half of the global batch; their mean is the single-process loss.
    mean = [(a + b) / 2 for a, b in zip(rank0["losses"], rank1["losses"])]
    assert mean == pytest.approx(single["losses"], abs=1e-5)


@pytest.mark.slow
def test_fsdp_trains_and_resumes_exactly(tmp_path):
    mp.spawn(main, args=(2, free_port(), str(tmp_path), ["fsdp"]), nprocs=2, join=True)
    result = torch.load(tmp_path / "fsdp_rank0.pt", weights_only=True)
    assert result["losses"]["fsdp_resumed"] == result["losses"]["fsdp_straight"]
    assert len(result["losses"]["fsdp_straight"]) == 3
    for name, tensor in result["straight"].items():
        assert torch.equal(tensor, result["resumed"][name]), name
