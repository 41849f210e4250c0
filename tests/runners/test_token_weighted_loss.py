"""run.loss_normalization: with answers of 1-12 words, 'token' makes the objective independent of the layout
(processes x micro-batch x accumulation, every strategy); 'sample' keeps the mean of micro-batch means."""
from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp

from tests.runners.test_distributed import free_port
from tests.runners.token_loss_worker import TWO_PROCESS_LAYOUTS, main
from tests.runners.varying_answers import VaryingAnswers, build_tiny_pllava, train_layout
from vlmkit.registry import RUNNERS

SINGLE_LAYOUTS = {"single_1x4": {"batch_size": 4}, "single_1x2x2": {"batch_size": 2, "grad_accum_steps": 2}}


def load(out, name):
    return torch.load(out / f"{name}.pt", weights_only=True)


def assert_same_run(out, name, reference="single_1x4"):
    run, ref = load(out, name), load(out, reference)
    assert run["losses"] == pytest.approx(ref["losses"], abs=1e-5), name
    assert run["weights"].keys() == ref["weights"].keys()
    for key, tensor in ref["weights"].items():
        assert torch.allclose(run["weights"][key], tensor, atol=1e-5), f"{name}: {key} differs from {reference}"


@pytest.fixture(scope="module")
def single_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("token_loss")
    for name, run in SINGLE_LAYOUTS.items():
        train_layout(out, name, **run)
    return out


@pytest.fixture(scope="module")
def first_step_batches(tmp_path_factory):
    """The fresh model and the collated first four samples, whole and as two micro-batches of two."""
    model = build_tiny_pllava(tmp_path_factory.mktemp("tiny"))
    data = VaryingAnswers(model)
    return model, data.collater([data[i] for i in range(4)]), [data.collater([data[i], data[i + 1]]) for i in (0, 2)]


def test_first_step_loss_is_summed_token_losses_over_the_steps_tokens(single_runs, first_step_batches):
    model, whole, _ = first_step_batches
    with torch.no_grad():  # transformers' loss over one batch is already its token-weighted mean
        expected = float(model.train()(**whole).loss)
    for name in SINGLE_LAYOUTS:
        assert load(single_runs, name)["losses"][0] == pytest.approx(expected, abs=1e-6), name


def test_accumulation_gives_the_same_losses_and_weights_as_one_micro_batch(single_runs):
    assert_same_run(single_runs, "single_1x2x2")


def test_sample_normalization_is_the_mean_of_micro_batch_means(tmp_path, first_step_batches):
    model, _, halves = first_step_batches
    with torch.no_grad():
        expected = sum(float(model.train()(**half).loss) for half in halves) / 2
    summary = train_layout(tmp_path, "sample", loss_normalization="sample", batch_size=2, grad_accum_steps=2)
    assert summary["losses"][0] == pytest.approx(expected, abs=1e-6)
    token = train_layout(tmp_path, "token", batch_size=2, grad_accum_steps=2)
    assert abs(summary["losses"][0] - token["losses"][0]) > 1e-4  # the data tells the two objectives apart


def test_loss_normalization_is_validated_against_its_accepted_values():
    errors = "\n".join(map(str, RUNNERS.check({"name": "trainer", "scheduler": {"name": "constant", "init_lr": 1.0},
                                               "max_steps": 1, "loss_normalization": "tokens"}, "run")))
    assert "run.loss_normalization" in errors and "'token', 'sample'" in errors


@pytest.mark.slow
def test_two_processes_ddp_zero_fsdp_and_accumulation_match_one_process(single_runs):
    mp.spawn(main, args=(2, free_port(), str(single_runs), "token"), nprocs=2, join=True)
    for name in TWO_PROCESS_LAYOUTS:
        assert_same_run(single_runs, name)
