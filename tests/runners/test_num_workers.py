"""``num_workers: auto`` (the default of run and evaluation): decode in workers, except for tiny datasets."""
from __future__ import annotations

import pytest

from tests.runners.toy import EmptyStream, ToyTokens
from vlmkit.errors import ConfigError
from vlmkit.runners import workers
from vlmkit.runners.distributed import DistEnv
from vlmkit.runners.evaluator import Evaluator
from vlmkit.runners.runner import Trainer
from vlmkit.runners.train_data import TrainData
from vlmkit.schema import check_value, signature_of


@pytest.fixture
def eight_cpus(monkeypatch):
    monkeypatch.setattr(workers, "available_cpus", lambda: 8)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)


def test_auto_uses_up_to_four_workers_leaving_a_cpu_for_the_main_process(eight_cpus, monkeypatch):
    assert workers.auto_workers(10_000) == 4
    assert workers.auto_workers(None) == 4  # a stream of unknown length
    monkeypatch.setattr(workers, "available_cpus", lambda: 2)
    assert workers.auto_workers(10_000) == 1
    monkeypatch.setattr(workers, "available_cpus", lambda: 1)
    assert workers.auto_workers(10_000) == 0


def test_auto_shares_the_cpus_between_the_processes_of_a_node(eight_cpus, monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert workers.auto_workers(10_000) == 1


def test_auto_decodes_a_tiny_dataset_in_the_main_process(eight_cpus):
    assert workers.auto_workers(workers.AUTO_MIN_SAMPLES - 1) == 0
    assert workers.auto_workers(workers.AUTO_MIN_SAMPLES) == 4


def test_a_number_is_used_as_given_and_nonsense_is_refused(eight_cpus):
    assert workers.resolve_num_workers(0, 10_000, "run.num_workers") == 0
    assert workers.resolve_num_workers(3, 5, "run.num_workers") == 3
    for bad in (-1, "many", True, 1.5):
        with pytest.raises(ConfigError, match="evaluation.num_workers"):
            workers.resolve_num_workers(bad, 100, "evaluation.num_workers")


@pytest.mark.parametrize("runner, section", [(Trainer, "run"), (Evaluator, "evaluation")])
def test_auto_is_the_default_and_passes_config_validation(runner, section):
    param = signature_of(runner).parameters["num_workers"]
    assert param.default == "auto"
    assert check_value("auto", param.annotation, f"{section}.num_workers") == []
    assert check_value(2, param.annotation, f"{section}.num_workers") == []
    assert check_value("two", param.annotation, f"{section}.num_workers")


def train_data(dataset, num_workers="auto") -> TrainData:
    return TrainData(dataset, DistEnv(rank=0, world_size=2, local_rank=0), batch_size=2, grad_accum_steps=1,
                     shuffle=False, seed=0, num_workers=num_workers, pin_memory=False)


def test_training_counts_the_samples_of_its_own_rank(eight_cpus):
    assert train_data(ToyTokens(2 * workers.AUTO_MIN_SAMPLES)).num_workers == 4
    assert train_data(ToyTokens(2 * workers.AUTO_MIN_SAMPLES - 2)).num_workers == 0
    assert train_data(ToyTokens(8), num_workers=2).num_workers == 2


def test_auto_keeps_an_untrackable_stream_in_the_main_process(eight_cpus):
    assert train_data(EmptyStream()).num_workers == 0
    with pytest.raises(ConfigError, match="run.num_workers"):
        train_data(EmptyStream(), num_workers=2)
