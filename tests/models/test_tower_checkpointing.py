"""Vision towers' activation checkpointing: transformers' own, and fairscale's wrapper with CPU offload (LAVIS's
EVA-ViT setting). Same loss and gradients as plain blocks, blocks really recomputed, names and keys unchanged."""
from __future__ import annotations

import pytest
import torch

from vlmkit.errors import ConfigError
from vlmkit.registry import ENCODERS
from vlmkit.runners.strategies.base import clean_name
from vlmkit import schema_index
from vlmkit.schema import check_component, check_signature

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=8)
TOWERS = ["eva_vit_g", "clip_vit", "siglip"]
# BLIP-2's vision config initialises weights with std 1e-10: a usual std keeps the gradients compared below
# visible.  CLIP / SigLIP read the last hidden state, so every block gets gradients (and is recomputed).
SETTINGS = {"eva_vit_g": {"config": {**TINY, "initializer_range": 0.02}},
            "clip_vit": {"config": TINY, "select_layer": -1}, "siglip": {"config": TINY, "select_layer": -1}}
MODES = {"plain": {}, "checkpointed": {"gradient_checkpointing": True},
         "offloaded": {"gradient_checkpointing": True, "checkpoint_offload": True}}


def tower(name: str, mode: str):
    torch.manual_seed(0)
    encoder = ENCODERS.build({"name": name, **SETTINGS[name], "freeze": False, **MODES[mode]})
    return encoder.train()


def one_step(encoder) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[int]]:
    """Loss, gradients and, per block, how often its MLP started a forward in one forward + backward (a pre-hook:
    torch's non-reentrant recompute stops early, once the last saved tensor is rebuilt, inside the MLP)."""
    generator = torch.Generator().manual_seed(1)
    frames = torch.randn(2, 1, 3, 32, 32, generator=generator)
    calls = [0] * len(encoder.blocks)
    hooks = [block.mlp.register_forward_pre_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
             for i, block in enumerate(encoder.blocks)]
    out = encoder(frames)
    loss = (out * torch.randn(out.shape, generator=generator)).sum()
    loss.backward()
    for hook in hooks:
        hook.remove()
    return loss.detach(), {n: p.grad for n, p in encoder.named_parameters() if p.grad is not None}, calls


@pytest.mark.parametrize("name", TOWERS)
def test_checkpointed_and_offloaded_blocks_give_the_plain_loss_and_gradients(name):
    plain_loss, plain_grads, plain_calls = one_step(tower(name, "plain"))
    assert plain_calls == [1, 1]
    # the blocks' own gradients are not vanishing, so equality below says something about them
    assert plain_grads[next(n for n in plain_grads if ".layers.0.mlp.fc1.weight" in n)].abs().max() > 1e-4
    for mode in ("checkpointed", "offloaded"):
        loss, grads, calls = one_step(tower(name, mode))
        assert calls == [2, 2], f"{mode}: each block is recomputed once in the backward pass"
        torch.testing.assert_close(loss, plain_loss, atol=1e-6, rtol=0)
        assert grads.keys() == plain_grads.keys()
        for key, grad in grads.items():
            torch.testing.assert_close(grad, plain_grads[key], atol=1e-6, rtol=0, msg=f"{mode} {key}")


@pytest.mark.parametrize("name", TOWERS)
def test_offload_wraps_every_block_with_fairscale(name):
    from fairscale.nn.checkpoint.checkpoint_activations import _checkpointed_forward

    blocks = tower(name, "offloaded").blocks
    for block in blocks:
        assert block.forward.func is _checkpointed_forward
        assert block.forward.args[2] is True  # offload_to_cpu
    assert not any(hasattr(block.forward, "func") for block in tower(name, "checkpointed").blocks)


@pytest.mark.parametrize("name", TOWERS)
def test_offload_keeps_parameter_names_and_checkpoints_loading(name):
    plain, offloaded = tower(name, "plain"), tower(name, "offloaded")
    assert list(offloaded.state_dict()) == list(plain.state_dict())
    names = [n for n, _ in offloaded.named_parameters()]
    assert names == [n for n, _ in plain.named_parameters()] == [clean_name(n) for n in names]
    # a plain tower's checkpoint loads strictly into an offloaded one, and back
    torch.manual_seed(5)
    other = ENCODERS.build({"name": name, **SETTINGS[name], "freeze": False})
    offloaded.load_state_dict(other.state_dict(), strict=True)
    plain.load_state_dict(offloaded.state_dict(), strict=True)
    frames = torch.randn(1, 1, 3, 32, 32)
    torch.testing.assert_close(offloaded.eval()(frames), other.eval()(frames))


def test_offload_without_checkpointing_is_a_config_error():
    cfg = {"name": "eva_vit_g", "config": TINY, "checkpoint_offload": True}
    errors = check_component(ENCODERS, cfg, "model.encoder")
    assert [e.path for e in errors] == ["model.encoder.checkpoint_offload"]
    assert "gradient_checkpointing: true" in str(errors[0])
    assert check_component(ENCODERS, {**cfg, "gradient_checkpointing": True}, "model.encoder") == []
    # the same rule from the schema index, which validates configs without importing the towers
    for name in TOWERS:
        indexed = schema_index.component_schema("encoders", name)
        errors = check_signature(indexed, {"checkpoint_offload": True}, "model.encoder", name)
        assert [e.path for e in errors] == ["model.encoder.checkpoint_offload"], name
    with pytest.raises(ConfigError, match="needs gradient_checkpointing"):
        ENCODERS.build(cfg)
