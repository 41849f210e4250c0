"""Each entry point gets its kind of runner, and evaluation always builds its datasets in evaluation mode."""
from __future__ import annotations

import textwrap

import pytest

from vlmkit.assemble import assemble
from vlmkit.config import load_config
from vlmkit.errors import ConfigError
from vlmkit.registry import DATASETS, MODELS, RUNNERS
from vlmkit.schema import Runtime

EVAL_CONFIG = "eval_configs/tiny/multiple_choice.yaml"


def test_an_evaluator_under_run_is_a_validation_error(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(textwrap.dedent("""
        model: {preset: tiny/pooling}
        datasets: {}
        run: {name: evaluator, tasks: multiple_choice}
    """))
    with pytest.raises(ConfigError, match=r"run.name: runner 'evaluator' is an evaluation runner; the 'run' "
                                          r"section \(train.py\) needs a training runner: trainer"):
        load_config(path, purpose="train")


def test_a_trainer_under_evaluation_is_a_validation_error():
    with pytest.raises(ConfigError, match=r"evaluation.name: runner 'trainer' is a training runner; the "
                                          r"'evaluation' section \(evaluate.py\) needs an evaluation runner: "
                                          r"evaluator"):
        load_config(EVAL_CONFIG, ["evaluation.name=trainer"], purpose="eval")


def test_a_runner_declaring_no_purpose_is_accepted_in_either_section(isolated, tmp_path):
    @RUNNERS.register("plain_runner")
    class PlainRunner:
        def __init__(self, model: Runtime[object], datasets: Runtime[dict], config: Runtime[dict]):
            pass

    path = tmp_path / "eval.yaml"
    path.write_text("model: {preset: tiny/pooling}\ndatasets: {}\nevaluation: {name: plain_runner}\n")
    load_config(path, purpose="eval")


def test_evaluation_builds_datasets_in_evaluation_mode_whatever_their_default(isolated, tmp_path):
    built = {}

    @MODELS.register("mode_model")
    class ModeModel:
        def __init__(self):
            pass

    @DATASETS.register("train_by_default")
    class TrainByDefault:  # llava_instruct, videochat2_instruct, gebc, webdataset_captions default to train
        def __init__(self, ann_path: str, train: bool = True):
            built[ann_path] = train

    @RUNNERS.register("mode_runner")
    class ModeRunner:
        def __init__(self, model: Runtime[object], datasets: Runtime[dict], config: Runtime[dict]):
            self.config = config

    path = tmp_path / "eval.yaml"
    path.write_text(textwrap.dedent("""
        model: {name: mode_model}
        datasets:
          defaulted: {name: train_by_default, ann_path: a}
          explicit: {name: train_by_default, ann_path: b, train: true}
        evaluation: {name: mode_runner}
        run: {name: mode_runner}
    """))
    cfg = load_config(path)
    experiment = assemble(cfg, section="evaluation")
    assert built == {"a": False, "b": False}
    assert experiment.runner.config["datasets"]["explicit"]["train"] is False  # the recorded config says so
    assert cfg.datasets.explicit.train is True  # the caller's config is left as it was
    built.clear()
    assemble(cfg, section="run")
    assert built == {"a": True, "b": True}
