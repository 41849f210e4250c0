"""Evaluation builds exactly the trained model (issue 18 item 2): the checkpoint records every weight source with
its hash; an evaluation model that differs, or a base weight file changed since training, is refused before the
model is built."""
import json
import textwrap

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

import vlmkit.assemble
from vlmkit.assemble import assemble
from vlmkit.config import load_config
from vlmkit.errors import ConfigError
from vlmkit.runners import checkpoint as ckpt
from vlmkit.runners import trained_model
from vlmkit.runners.trained_model import config_differences

# tiny/pooling's CLIP tower, frozen and loaded from a transformers folder (allow_random_frozen: false)
CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=8)
TRAIN = """
imports: [tests.toy_video_plugin]
model: {preset: tiny/pooling, allow_random_frozen: false}
datasets:
  train: {name: toy_colour_videos, size: 4}
run: {name: trainer, max_steps: 2, save_every: 1, batch_size: 2, loggers: [jsonl], output_dir: RUN,
      scheduler: {name: constant, init_lr: 0.001}}
"""
EVAL = """
imports: [tests.toy_video_plugin]
MODEL
datasets:
  val: {name: toy_colour_videos, size: 2}
evaluation:
  name: evaluator
  checkpoint: RUN
  tasks: {name: open_qa, metrics: [exact_match]}
  max_new_tokens: 2
  loggers: []
  output_dir: OUT
"""


def write_clip(folder, seed):
    torch.manual_seed(seed)
    CLIPVisionModel(CLIPVisionConfig(**CLIP)).save_pretrained(folder)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run trained with a frozen CLIP tower from a file; content_of calls counted (once per run, not per save)."""
    root = tmp_path_factory.mktemp("trained")
    write_clip(root / "clip", seed=1)
    config = root / "train.yaml"
    config.write_text(TRAIN.replace("RUN", str(root / "run")))
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        counted = trained_model.content_of
        patch.setattr(trained_model, "content_of", lambda path: calls.append(path) or counted(path))
        cfg = load_config(config, [f"model.branches.0.encoder.pretrained={root / 'clip'}",
                                   "model.branches.0.encoder.freeze=true"], purpose="train")
        assemble(cfg, section="run").runner.train()
    return root, calls


def evaluate(root, name, *overrides, model=""):
    """Evaluate the run as evaluate.py does, with model.build_model forbidden when ``forbid_build``."""
    config = root / f"{name}.yaml"
    config.write_text(textwrap.dedent(EVAL).replace("MODEL", model).replace("RUN", str(root / "run"))
                      .replace("OUT", str(root / name)))
    experiment = assemble(load_config(config, list(overrides), purpose="eval"), section="evaluation")
    return experiment.runner.evaluate()


def never_build(*args, **kwargs):
    raise AssertionError("the model was built before the evaluation was refused")


def test_every_checkpoint_records_the_frozen_tower_hashed_once_per_run(run):
    root, calls = run
    steps = sorted((root / "run" / "checkpoints").glob("step_*"))
    records = [ckpt.read_manifest(step)["weight_sources"] for step in steps]
    assert len(steps) == 2 and records[0] == records[1]
    (tower,) = records[0]
    assert tower["path"] == str(root / "clip") and tower["layout"] == "transformers CLIPVisionModel"
    assert tower["config_keys"] == ["model.branches[0].encoder.pretrained"]
    assert tower["frozen_parameters"] > 0 and tower["trainable_parameters"] == 0
    assert set(tower["files"]) == {"config.json", "model.safetensors"} and len(tower["sha256"]) == 64
    assert calls == [str(root / "clip")]  # hashed at start-up, not at each of the two saves


def test_the_trained_model_evaluates_with_its_sources_verified(run):
    root, _ = run
    results = evaluate(root, "same")
    assert results["datasets"]["val"]["num_predictions"] == 2
    check = json.loads((root / "same" / "results.json").read_text())["weights_check"]
    assert check["changed"] == [] and check["config_differences"] == []
    assert [(s["path"], s["status"]) for s in check["sources"]] == [(str(root / "clip"), "verified")]


def test_an_evaluation_model_without_the_pretrained_tower_is_refused_before_building(run, monkeypatch):
    root, _ = run
    monkeypatch.setattr(vlmkit.assemble, "build_model", never_build)
    with pytest.raises(ConfigError) as err:
        evaluate(root, "dropped", "model.branches.0.encoder.freeze=true",
                 model="model: {preset: tiny/pooling, allow_random_frozen: false}")
    message = str(err.value)
    assert f"model.branches[0].encoder.pretrained: '{root / 'clip'}' in the checkpoint's config, not in the " \
           f"evaluation config" in message
    assert "would evaluate a different model than was trained" in message
    assert "Drop the evaluation config's model section" in message


def test_a_base_weight_file_changed_after_training_is_refused_naming_it(run, monkeypatch):
    root, _ = run
    weights = root / "clip" / "model.safetensors"
    original = weights.read_bytes()
    old = ckpt.read_manifest(ckpt.latest(root / "run" / "checkpoints"))["weight_sources"][0]["files"]
    try:
        write_clip(root / "clip", seed=2)
        with monkeypatch.context() as patch:
            patch.setattr(vlmkit.assemble, "build_model", never_build)
            with pytest.raises(ConfigError) as err:
                evaluate(root, "changed")
        message = str(err.value)
        assert message.startswith("evaluation.allow_changed_weights:")
        new = trained_model.content_of(str(root / "clip"))["files"]["model.safetensors"]
        assert f"{weights}: sha256 {old['model.safetensors']} at training, now {new}" in message
        assert "config.json" not in message  # unchanged files are not named
        evaluate(root, "allowed", "evaluation.allow_changed_weights=true")
        check = json.loads((root / "allowed" / "results.json").read_text())["weights_check"]
        assert check["allow_changed_weights"] and str(weights) in check["changed"][0]
    finally:
        weights.write_bytes(original)


def test_a_dropped_init_weights_entry_matters_only_if_it_filled_frozen_parameters():
    stage1 = {"path": "runs/stage1", "layout": "vlmkit"}
    saved, current = {"preset": "p", "init_weights": [stage1]}, {"preset": "p"}

    def records(frozen):
        return [{"path": "runs/stage1", "layout": "vlmkit", "config_keys": ["model.init_weights[0]"],
                 "frozen_parameters": frozen, "trainable_parameters": 10}]

    differences, notes = config_differences(saved, current, records(0))
    assert differences == [] and "filled trainable parameters only" in notes[0]  # the checkpoint replaces them
    differences, _ = config_differences(saved, current, records(64))
    assert "  model.init_weights: runs/stage1 (vlmkit) filled 64 frozen parameters at training; without it they " \
           "would differ" in differences
    assert any("model.init_weights[0].path" in line for line in differences)
    assert config_differences(saved, current, None)[0]  # a checkpoint without a record: refused
    added, _ = config_differences(current, saved, records(0))  # an entry training did not load
    assert any("not in the checkpoint's config" in line for line in added)
    two = {"preset": "p", "init_weights": [stage1, {"path": "b.pth", "layout": "blip2_lavis"}]}
    reordered, _ = config_differences(two, {"preset": "p", "init_weights": two["init_weights"][::-1]}, records(0))
    assert reordered  # later loads overwrite earlier ones: the order is part of the model
