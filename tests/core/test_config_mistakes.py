"""Config mistakes fail at validation, as a ConfigError naming the key (exit status 2), never late or as a traceback."""
import importlib.util

import pytest
from omegaconf import OmegaConf

from tests.core import config_fuzz
from vlmkit.cli import main
from vlmkit.config import load_config, parse_overrides
from vlmkit.errors import ConfigError

DEMO = "train_configs/demo/stage2_instruct.yaml"
EVAL = "eval_configs/tiny/captioning.yaml"


def _error(path, overrides=(), **kw) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides), **kw)
    return str(info.value)


def test_fuzzed_configs_give_no_traceback(tmp_path):
    counts, failures = config_fuzz.run(200, seed=0, tmp=tmp_path)
    assert counts["traceback"] == 0, "\n".join(failures)
    assert counts["error"] > 100  # the mutations do break configs


@pytest.mark.parametrize("overrides, expected", [
    (["run.max_epochs=1"], "run: set exactly one of max_epochs and max_steps"),
    (["~run.max_steps"], "run: set exactly one of max_epochs and max_steps"),
    (["run.batch_size=0"], "run.batch_size: must be > 0, got 0"),
    (["run.scheduler.init_lr=-1e-4"], "run.scheduler.init_lr: must be >= 0, got -0.0001"),
    (["run.optimizer.weight_decay=-1"], "run.optimizer.weight_decay: must be >= 0"),
])
def test_cross_field_and_range_rules(overrides, expected):
    assert expected in _error(DEMO, overrides, purpose="train")


def test_evaluation_sizes_must_be_positive():
    assert "evaluation.batch_size: must be > 0, got 0" in _error(EVAL, ["evaluation.batch_size=0"], purpose="eval")


def test_unknown_lora_key_fails_at_validation():
    message = _error("train_configs/pllava/finetune_7b.yaml", ["model.llm.lora.rank=8"])
    assert "model.llm.lora.rank: unknown key 'rank' for LoraSettings" in message
    assert "model.llm.lora.r: must be > 0" in _error("train_configs/pllava/finetune_7b.yaml", ["model.llm.lora.r=0"])


@pytest.mark.parametrize("text, expected", [
    ("model: {preset: '${oc.env:VLMKIT_UNSET_VAR_X}'}\n", "VLMKIT_UNSET_VAR_X"),
    ("imports: 5\nmodel: {preset: tiny/pooling}\n", "imports: expected a list of module names"),
    ("defaults: 5\n", "defaults: expected a list of preset names"),
    ("defaults: ['/etc/hostname']\n", "defaults[0]: unknown preset '/etc/hostname'"),
    ("model: {preset: tiny/pooling, llm: {name: [a, b]}}\n", "model.llm.name: a component name must be a string"),
    ("model: {preset: tiny/pooling}\ndatasets: {d: {preset: video_captions, ann_path: '???'}}\n",
     "datasets.d.ann_path: value is missing"),
    ("model: {preset: {x: 1}}\n", "model.preset: expected a preset name or a .yaml path"),
])
def test_structure_and_interpolation_errors_are_config_errors(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert expected in _error(path)


def test_validate_checks_annotation_files(tmp_path, capsys):
    missing = tmp_path / "nowhere.json"
    assert main(["validate", EVAL, f"datasets.synthetic_captions.ann_path={missing}"]) == 2
    assert f"datasets.synthetic_captions.ann_path: no such file or folder: {missing}" in capsys.readouterr().err
    assert main(["validate", EVAL, "--skip-files", f"datasets.synthetic_captions.ann_path={missing}"]) == 0


def test_logger_without_its_package_fails_at_validation(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert "needs the package(s) tensorboard" in _error(DEMO, ["run.loggers=[console,tensorboard]"])


def test_overrides_take_the_bracket_paths_errors_print():
    assert parse_overrides(["model.branches[0].stages[1].pool_level=4", "~a[2].b"]) == (
        [("model.branches.0.stages.1.pool_level", 4)], ["a.2.b"])
    cfg = load_config("train_configs/videogpt_plus/finetune_phi3_mini.yaml",
                      ["model.branches[1].stages[1].pool_level=4", "run.loggers=[console,jsonl]",
                       "~run.loggers[1]"], validate=False)
    assert cfg.model.branches[1].stages[1].pool_level == 4
    assert list(cfg.run.loggers) == ["console"]
    cfg = load_config(DEMO, ["~run.loggers.0"], validate=False)
    assert list(cfg.run.loggers) == ["jsonl"]


def test_eval_config_can_drop_its_model_section(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    OmegaConf.save(OmegaConf.create({"model": {"preset": "tiny/pooling", "max_length": 99}}), run / "config.yaml")
    cfg = load_config(EVAL, [f"evaluation.checkpoint={run}", "~model"], validate=False)
    assert cfg.model.max_length == 99


def test_validate_checks_an_evaluated_checkpoint_against_the_model(monkeypatch, capsys):
    from vlmkit.runners import trained_model

    def mismatch(cfg, section="evaluation"):  # what check_before_build raises for a model that differs
        raise ConfigError("model.max_length", "99 in the checkpoint's config, 256 in the evaluation config")

    monkeypatch.setattr(trained_model, "check_before_build", mismatch)
    checkpoint = "evaluation.checkpoint=output/some_run/checkpoints/step_1"
    assert main(["validate", EVAL, checkpoint, "--skip-files"]) == 0  # skipped with the file checks
    ann = "datasets.synthetic_captions.ann_path=eval_configs/tiny/captioning.yaml"
    assert main(["validate", EVAL, ann]) == 0  # no checkpoint to check (and torch is not imported for it)
    assert main(["validate", EVAL, ann, checkpoint]) == 2
    assert "model.max_length: 99 in the checkpoint's config" in capsys.readouterr().err
