"""model.init_weights: a model starts from a previous vlmkit run or a published checkpoint, strictly."""
import pytest
import safetensors.torch
import torch

from vlmkit.assemble import build_model
from vlmkit.config import load_config
from vlmkit.errors import ConfigError


def build(tmp_path, preset, *overrides):
    path = tmp_path / "exp.yaml"
    path.write_text(f"model: {{preset: {preset}}}\n")
    return build_model(load_config(path, list(overrides)))


def fake_run(tmp_path, tensors):
    """The layout vlmkit's trainer writes: run/checkpoints/latest -> step_.../model.safetensors."""
    step = tmp_path / "run" / "checkpoints" / "step_00000007"
    step.mkdir(parents=True)
    safetensors.torch.save_file(tensors, str(step / "model.safetensors"))
    (step.parent / "latest").write_text("step_00000007")
    return tmp_path / "run"


def test_second_stage_starts_from_the_first_stage_run(tmp_path):
    first = build(tmp_path, "tiny/pooling")
    trained = {n: p.detach() + 1.0 for n, p in first.named_parameters() if n.startswith("branches.0.stages.0")}
    run = fake_run(tmp_path, trained)
    second = build(tmp_path, "tiny/pooling", f"model.init_weights=[{{path: {run}}}]")
    params = dict(second.named_parameters())
    for name, tensor in trained.items():
        assert torch.equal(params[name], tensor), name


def test_a_checkpoint_that_does_not_fit_is_named(tmp_path):
    first = build(tmp_path, "tiny/pooling")
    name = "branches.0.stages.0.net.0.weight" if "branches.0.stages.0.net.0.weight" in dict(
        first.named_parameters()) else next(n for n, _ in first.named_parameters() if "stages.0" in n)
    run = fake_run(tmp_path, {name: torch.zeros(3, 3), "not.a.param": torch.zeros(1)})
    with pytest.raises(ConfigError) as info:
        build(tmp_path, "tiny/pooling", f"model.init_weights=[{{path: {run}}}]")
    text = str(info.value)
    assert "model.init_weights[0].path" in text and "not.a.param: not a parameter" in text
    assert f"{name}: checkpoint (3, 3)" in text


def test_published_layout_with_targets(tmp_path):
    model = build(tmp_path, "video_llama/tiny")
    proj = model.branches[0].stages[2].proj
    state = {"llama_proj.weight": torch.randn_like(proj.weight), "llama_proj.bias": torch.randn_like(proj.bias)}
    torch.save(state, tmp_path / "minigpt4.pth")
    loaded = build(tmp_path, "video_llama/tiny",
                   f"model.init_weights=[{{path: {tmp_path / 'minigpt4.pth'}, layout: minigpt4, "
                   "targets: {projector: branches.0.stages.2}}]")
    assert torch.equal(loaded.branches[0].stages[2].proj.weight, state["llama_proj.weight"])
    with pytest.raises(ConfigError, match="init_weights\\[0\\].layout: expected one of"):
        build(tmp_path, "video_llama/tiny", f"model.init_weights=[{{path: x, layout: lavis}}]")
