import functools
import textwrap

import pytest
from omegaconf import OmegaConf

from tests.core.components import register_toys
from vlmkit import config as config_mod
from vlmkit.assemble import assemble
from vlmkit.config import load_config, parse_overrides, save_config
from vlmkit.errors import ConfigError


@pytest.fixture
def toys(isolated):
    return register_toys()


@pytest.fixture
def presets(tmp_path, monkeypatch):
    """Preset folders like vlmkit/configs/{models,datasets}, in a temporary place."""
    models, datasets = tmp_path / "presets" / "models", tmp_path / "presets" / "datasets"
    (models / "toy").mkdir(parents=True)
    datasets.mkdir(parents=True)
    (models / "toy" / "base.yaml").write_text("name: toy_model\nhidden: 16\ndropout: 0.1\nframes: 8\n")
    (models / "toy" / "small.yaml").write_text("defaults: [toy/base]\nhidden: 4\n")
    (models / "toy" / "big.yaml").write_text("defaults: [toy/base]\nhidden: 64\nframes: 32\n")
    (datasets / "toy_train.yaml").write_text("name: toy_data\nn: 10\nsplit: train\n")
    monkeypatch.setitem(config_mod.PRESET_DIRS, "model", models)
    monkeypatch.setitem(config_mod.PRESET_DIRS, "datasets", datasets)
    return tmp_path


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


EXPERIMENT = """
    model:
      preset: toy/small
      dropout: 0.2
    datasets:
      train:
        preset: toy_train
        n: 20
    run:
      name: toy_runner
      lr: 0.01
      output_dir: ${oc.env:VLMKIT_TEST_OUT,/tmp/unused}/run
"""


def test_precedence_constructor_preset_experiment_cli(toys, presets, monkeypatch):
    monkeypatch.setenv("VLMKIT_TEST_OUT", str(presets))
    cfg = load_config(write(presets, EXPERIMENT), ["run.lr=0.5"], purpose="train")
    assert cfg.model.hidden == 4            # small preset over base preset
    assert cfg.model.frames == 8            # base preset (through the chain)
    assert cfg.model.dropout == 0.2         # experiment over preset
    assert cfg.run.lr == 0.5                # command line over experiment
    assert "epochs" not in cfg.run          # constructor default applies at build time
    assert cfg.run.output_dir == f"{presets}/run"  # interpolation resolved
    exp = assemble(cfg)
    assert exp.runner.epochs == 1 and exp.runner.lr == 0.5
    assert exp.datasets["train"].n == 20 and exp.datasets["train"].contract == {"frames": 8}
    assert exp.runner.config["model"]["preset"] == "toy/small"


def test_preset_on_command_line_changes_loaded_defaults(toys, presets):
    path = write(presets, EXPERIMENT)
    cfg = load_config(path, ["model.preset=toy/big"])
    assert cfg.model.hidden == 64 and cfg.model.frames == 32 and cfg.model.dropout == 0.2
    cfg = load_config(path, ["datasets.train.preset=toy_train", "datasets.train.split=val"])
    assert cfg.datasets.train.split == "val"


def test_delete_and_lavis_options(toys, presets):
    path = write(presets, EXPERIMENT)
    cfg = load_config(path, ["~model.dropout"])
    assert "dropout" not in cfg.model  # gone from every layer: the constructor default applies
    assert assemble(cfg).model.dropout == 0.0
    from vlmkit.entry import experiment_parser
    args = experiment_parser("t").parse_args(["--cfg-path", str(path), "run.epochs=3", "--options", "run.lr=2.0"])
    cfg = load_config(args.cfg_path, [*args.overrides, *args.options])
    assert cfg.run.epochs == 3 and cfg.run.lr == 2.0
    with pytest.raises(ConfigError, match="no such key"):
        load_config(path, ["~run.nothing"])


def recording_init(init, built):
    @functools.wraps(init)  # the same signature for the schema
    def wrapper(self, *args, **kwargs):
        built.append(type(self).__name__)
        init(self, *args, **kwargs)
    return wrapper


def test_typo_caught_before_anything_is_built_with_key_path(toys, presets, monkeypatch):
    path = write(presets, EXPERIMENT.replace("lr: 0.01", "lr: 0.01\n      epocs: 3"))
    built = []
    for cls in toys:  # validation reads the signatures; constructing a component (a model, a dataset) is too late
        monkeypatch.setattr(cls, "__init__", recording_init(cls.__init__, built))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert built == []
    assert "run.epocs: unknown key 'epocs' for runner 'toy_runner'. Did you mean 'epochs'?" in str(info.value)
    assert "Accepted keys: lr=0.001, epochs=1, output_dir='out'" in str(info.value)
    assemble(load_config(write(presets, EXPERIMENT, "fixed.yaml")))  # the recorder sees what a real build makes
    assert built == ["ToyModel", "ToyData", "ToyRunner"]


def test_all_problems_reported_together(toys, presets):
    path = write(presets, EXPERIMENT)
    with pytest.raises(ConfigError) as info:
        load_config(path, ["model.hidden=wide", "model.adapter.name=toy_prj", "datasets.train.n=null", "extra.x=1"])
    text = str(info.value)
    assert "4 problems" in text
    assert "model.hidden: expected int, got 'wide'" in text
    assert "model.adapter.name: unknown adapter 'toy_prj'. Did you mean 'toy_proj'" in text
    assert "datasets.train.n: expected int, got None" in text
    assert "extra: unknown top-level section" in text


def test_nested_component_keys_and_runtime_keys_are_checked(toys, presets):
    path = write(presets, EXPERIMENT)
    cfg = load_config(path, ["model.adapter.name=toy_projector", "model.adapter.depth=3"])
    assert assemble(cfg).model.adapter.in_dim == 4  # width derived from the model, not configured
    with pytest.raises(ConfigError, match="model.adapter.in_dim: 'in_dim' of adapter 'toy_proj'"):
        load_config(path, ["model.adapter.name=toy_proj", "model.adapter.in_dim=3"])


def test_missing_section_for_purpose_and_unknown_preset(toys, presets):
    path = write(presets, "model: {preset: toy/small}\n")
    with pytest.raises(ConfigError, match="needs a 'datasets' section"):
        load_config(path, purpose="train")
    with pytest.raises(ConfigError, match=r"unknown preset 'toy/smal'.*Available presets: toy/base, toy/big, toy/small"):
        load_config(path, ["model.preset=toy/smal"])


def test_defaults_loop_and_bad_override_and_missing_file(toys, presets):
    a = write(presets, "defaults: [b.yaml]\n", "a.yaml")
    write(presets, "defaults: [a.yaml]\n", "b.yaml")
    with pytest.raises(ConfigError, match="defaults chain loops"):
        load_config(a)
    with pytest.raises(ConfigError, match="write key.path=value"):
        parse_overrides(["model.hidden"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(presets / "nope.yaml")


def test_experiment_defaults_and_imports_plugin(toys, presets, tmp_path, monkeypatch):
    (tmp_path / "my_plugin_mod.py").write_text(textwrap.dedent("""
        from vlmkit.registry import RUNNERS
        from vlmkit.schema import Runtime
        @RUNNERS.register("plugin_runner")
        class PluginRunner:
            '''A runner from a user's module.'''
            def __init__(self, model: Runtime[object], steps: int = 1):
                self.model, self.steps = model, steps
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    write(presets, EXPERIMENT, "base.yaml")
    path = write(presets, "defaults: [base.yaml]\nimports: [my_plugin_mod]\nrun: {name: plugin_runner, steps: 5}\n")
    cfg = load_config(path, ["~run.lr", "~run.output_dir"])
    assert assemble(cfg).runner.steps == 5
    bad = write(presets, "imports: [no_such_plugin_mod]\n", "bad.yaml")
    with pytest.raises(ConfigError, match="imports\\[0\\]: cannot import plugin module 'no_such_plugin_mod'"):
        load_config(bad)


def test_resolved_config_round_trip(toys, presets, tmp_path):
    cfg = load_config(write(presets, EXPERIMENT), ["run.lr=0.25"])
    saved = save_config(cfg, tmp_path / "out")
    again = load_config(saved)
    assert OmegaConf.to_container(again) == OmegaConf.to_container(cfg)
    assert "${" not in saved.read_text()


def test_eval_config_without_model_takes_the_trained_model(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step_00000004").mkdir(parents=True)
    trained = {"imports": ["tests.toy_video_plugin"],
               "model": {"preset": "tiny/pooling", "name": "video_llm", "max_length": 99,
                         "sampling": {"sampler": {"name": "linspace", "num_frames": 4}}}}
    (run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(trained)))
    path = write(tmp_path, f"evaluation: {{checkpoint: {run / 'checkpoints' / 'step_00000004'}}}\n", "eval.yaml")
    with pytest.raises(ConfigError, match=r"trust_checkpoint_imports.*imports \['tests.toy_video_plugin'\]"):
        load_config(path, validate=False)  # importing runs the module's code: not without trust
    cfg = load_config(path, ["model.max_length=120", "evaluation.trust_checkpoint_imports=true"], validate=False)
    assert cfg.model.max_length == 120                          # command line over the run's value
    assert cfg.model.sampling.sampler.num_frames == 4           # the run's sampling, not a default
    assert cfg.model.template.name == "vicuna_v1"               # preset values the run was built with
    assert list(cfg.imports) == ["tests.toy_video_plugin"]
    with pytest.raises(ConfigError, match="no config.yaml of a training run"):
        load_config(write(tmp_path, f"evaluation: {{checkpoint: {tmp_path / 'nowhere'}}}\n", "e2.yaml"),
                    validate=False)
