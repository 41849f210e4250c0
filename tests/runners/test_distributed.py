"""Two processes on CPU (gloo): DDP, ZeRO and FSDP match one process with the same global batch; FSDP resumes."""
from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.runners.dist_worker import main, train
from tests.runners.toy import make_model

# Two processes each reduce half the batch and average the gradients; one process sums the same terms in another
# order. After 3 AdamW steps the float32 weights agree to this (measured: FSDP differs by at most 6e-8).
ATOL = 1e-6


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


def assert_trained(weights):
    """Every trainable tensor moved away from its initial value (else matching one process proves nothing)."""
    initial = dict(make_model().named_parameters())
    for name, tensor in weights.items():
        moved = (tensor - initial[name].detach()).abs().max().item()
        assert moved > 100 * ATOL if initial[name].requires_grad else moved == 0, (name, moved)


@pytest.mark.parametrize("strategy", ["ddp", "zero"])
def test_two_processes_equal_one_with_the_same_global_batch(two_process_results, strategy):
    out = two_process_results
    rank0, rank1, single = load(out, strategy, 0), load(out, strategy, 1), load(out, "single")
    assert rank0["weights"].keys() == single["weights"].keys()
    for name, tensor in rank0["weights"].items():
        assert torch.equal(tensor, rank1["weights"][name]), f"{name} differs between ranks: gradients not synced"
        assert torch.allclose(tensor, single["weights"][name], atol=ATOL), name
    assert_trained(rank0["weights"])
    # Each rank's loss covers its half of the global batch; their mean is the single-process loss.
    mean = [(a + b) / 2 for a, b in zip(rank0["losses"], rank1["losses"])]
    assert mean == pytest.approx(single["losses"], abs=1e-5)


@pytest.fixture(scope="module")
def fsdp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    mp.spawn(main, args=(2, free_port(), str(out), ["fsdp", "fsdp_resume"]), nprocs=2, join=True)
    train(out, "single", strategy="single", batch_size=4, max_steps=3)
    return out


@pytest.mark.slow
def test_fsdp_equals_one_process_with_the_same_global_batch(fsdp_results):
    fsdp, single = load(fsdp_results, "fsdp"), load(fsdp_results, "single")
    trainable = {name for name, p in make_model().named_parameters() if p.requires_grad}
    assert fsdp["weights"].keys() == trainable  # the full tensors, gathered from both shards
    for name, tensor in fsdp["weights"].items():
        assert tensor.shape == single["weights"][name].shape, name
        assert torch.allclose(tensor, single["weights"][name], atol=ATOL), name
    assert_trained(fsdp["weights"])
    assert len(single["losses"]) == 3
    assert fsdp["losses"] == pytest.approx(single["losses"], abs=1e-5)  # a step's loss is over both ranks' tokens


@pytest.mark.slow
def test_fsdp_trains_and_resumes_exactly(fsdp_results):
    result = torch.load(fsdp_results / "fsdp_resume_rank0.pt", weights_only=True)
    assert result["losses"]["fsdp_resumed"] == result["losses"]["fsdp_straight"]
    assert len(result["losses"]["fsdp_straight"]) == 3
    for name, tensor in result["straight"].items():
        assert torch.equal(tensor, result["resumed"][name]), name
