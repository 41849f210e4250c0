"""run.strategy.activation_checkpointing: module families resolve to the model's classes (the LLM's decoder layers,
the vision towers' blocks), get torch's checkpoint wrapper, recompute in the backward pass and leave gradients
unchanged."""
from __future__ import annotations

import pytest
import torch
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

from tests.runners.varying_answers import VaryingAnswers
from vlmkit.errors import ConfigError
from vlmkit.registry import RUNNERS, STRATEGIES
from vlmkit.runners.strategies.base import clean_name

FAMILIES = ["llm_layers", "vision_blocks"]


def tiny_pllava(tmp_path, *overrides):
    """Tiny PLLaVA with a trained CLIP tower (so gradients flow through its blocks), seeded weights."""
    from vlmkit.assemble import build_model
    from vlmkit.config import load_config

    path = tmp_path / "tiny.yaml"
    path.write_text("model: {preset: pllava/tiny}\n")
    torch.manual_seed(0)
    return build_model(load_config(path, ["model.branches.0.encoder.freeze=false", *overrides]))


def gradients(model, batch) -> dict[str, torch.Tensor]:
    model.train()
    model.zero_grad()
    model(**batch).loss.backward()
    return {clean_name(n): p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    plain, checkpointed = tiny_pllava(tmp), tiny_pllava(tmp)
    strategy = STRATEGIES.build({"name": "single", "activation_checkpointing": FAMILIES}, "run.strategy")
    wrappers = strategy.checkpoint_activations(checkpointed)
    data = VaryingAnswers(plain)
    return plain, checkpointed, wrappers, data.collater([data[i] for i in range(3)])


def test_families_wrap_the_llm_decoder_layers_and_the_vision_blocks(models):
    _, model, wrappers, _ = models
    inner = {family: [type(w._checkpoint_wrapped_module).__name__ for w in found] for family, found in wrappers.items()}
    assert inner == {"llm_layers": ["LlamaDecoderLayer"] * 2, "vision_blocks": ["CLIPEncoderLayer"] * 3}
    wrapped = [m for m in model.modules() if isinstance(m, CheckpointWrapper)]
    assert len(wrapped) == 5
    bare = [type(m).__name__ for m in model.modules() if type(m).__name__ in ("LlamaDecoderLayer", "CLIPEncoderLayer")
            and not any(m is w._checkpoint_wrapped_module for w in wrapped)]
    assert bare == []  # every layer of both families sits in a wrapper


def test_gradients_equal_without_checkpointing_and_layers_recompute(models):
    plain, model, _, batch = models
    calls = []
    layer = model.llm.model.base_model.model.model.layers[0]._checkpoint_wrapped_module
    handle = layer.register_forward_pre_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    try:
        checkpointed = gradients(model, batch)
    finally:
        handle.remove()
    assert len(calls) == 2  # the forward pass, then the recompute (stopped early: no post-hook) in backward
    reference = gradients(plain, batch)
    assert checkpointed.keys() == reference.keys()
    assert any(k.startswith("branches.0.encoder") for k in reference)  # the tower trains: its blocks get gradients
    for name, grad in reference.items():
        assert torch.allclose(checkpointed[name], grad, atol=1e-6), name


def test_unknown_family_fails_naming_the_accepted_ones():
    for name in ("single", "ddp", "zero", "fsdp"):
        with pytest.raises(ConfigError, match="activation_checkpointing.*'llm_layers', 'vision_blocks'"):
            STRATEGIES.build({"name": name, "activation_checkpointing": ["llm_blocks"]}, "run.strategy")
        with pytest.raises(ConfigError, match="unknown module family.*accepted: llm_layers, vision_blocks"):
            STRATEGIES.get(name)(activation_checkpointing=["llm_blocks"])  # built in code, past the schema
    errors = "\n".join(map(str, RUNNERS.check({"name": "trainer", "scheduler": {"name": "constant", "init_lr": 1.0},
                                               "max_steps": 1, "strategy": {"name": "ddp", "activation_checkpointing":
                                                                            ["vit_blocks"]}}, "run")))
    assert "activation_checkpointing" in errors and "'llm_layers', 'vision_blocks'" in errors


def test_a_family_the_model_checkpoints_itself_is_refused(tmp_path):
    model = tiny_pllava(tmp_path, "model.llm.gradient_checkpointing=true")
    strategy = STRATEGIES.build({"name": "single", "activation_checkpointing": ["llm_layers"]}, "run.strategy")
    with pytest.raises(ConfigError, match="already checkpointed"):
        strategy.checkpoint_activations(model)


def test_a_model_without_the_family_is_refused():
    strategy = STRATEGIES.build({"name": "ddp", "activation_checkpointing": ["vision_blocks"]}, "run.strategy")
    with pytest.raises(ConfigError, match="vision_blocks: no vision tower"):
        strategy.checkpoint_activations(torch.nn.Sequential(torch.nn.Linear(2, 2)))
