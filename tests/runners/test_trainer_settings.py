"""The Trainer refuses settings it cannot run with, naming the key (checked again at construction, for a trainer
built without config validation)."""
from __future__ import annotations

import pytest

from tests.runners.toy import EmptyStream, ToyTokens, make_model, run_cfg
from vlmkit.errors import ConfigError, DataError
from vlmkit.runners.runner import Trainer


def trainer(tmp_path, datasets=None, **overrides) -> Trainer:
    settings = {k: v for k, v in run_cfg(**overrides).items() if k != "name"}
    return Trainer(**settings, model=make_model(), datasets=datasets or {"train": ToyTokens(8)},
                   output_dir=str(tmp_path))


@pytest.mark.parametrize("key", ["batch_size", "grad_accum_steps", "log_every", "max_steps", "eval_every",
                                 "save_every"])
def test_a_count_below_one_is_refused_with_its_key(tmp_path, key):
    with pytest.raises(ConfigError, match=rf"run\.{key}.*must be >= 1, got -1"):
        trainer(tmp_path, **{key: -1})


def test_exactly_one_of_max_epochs_and_max_steps(tmp_path):
    with pytest.raises(ConfigError, match="set exactly one of max_epochs and max_steps"):
        trainer(tmp_path, max_epochs=1, max_steps=2)


def test_data_smaller_than_one_step_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"smaller than one optimizer step \(batch_size 4 x grad_accum_steps 3\)"):
        trainer(tmp_path, grad_accum_steps=3)


def test_an_epoch_of_a_stream_without_length_needs_max_steps(tmp_path):
    with pytest.raises(ConfigError, match=r"run\.max_epochs.*set run\.max_steps instead"):
        trainer(tmp_path, datasets={"train": EmptyStream()}, max_epochs=1)
    assert trainer(tmp_path, datasets={"train": EmptyStream()}, max_steps=2).total_steps == 2


def test_the_run_length_counts_optimizer_steps(tmp_path):
    run = trainer(tmp_path, datasets={"train": ToyTokens(24)}, max_epochs=2, grad_accum_steps=2)
    assert (run.steps_per_epoch, run.total_steps) == (3, 6)  # 24 records / (4 x 2) per step
