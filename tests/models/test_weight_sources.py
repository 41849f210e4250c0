"""Frozen weights must come from somewhere: a frozen module nobody loaded refuses to build (issue 17 item 2)."""
import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from tests.models.recipe_helpers import build_preset
from vlmkit.errors import ConfigError
from vlmkit.models.weight_sources import RANDOM_TRAINABLE, recording_loads, source_report

# The sizes of vlmkit/configs/models/llms/tiny_llama.yaml and pllava/tiny.yaml's CLIP tower.
LLAMA = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             vocab_size=512, max_position_embeddings=512, tie_word_embeddings=False, pad_token_id=0, bos_token_id=2,
             eos_token_id=3)
CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=32,
            patch_size=8)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A LLaMA and a CLIP vision tower written by transformers under their own names."""
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(1)
    LlamaForCausalLM(LlamaConfig(**LLAMA)).save_pretrained(root / "llama")
    CLIPVisionModel(CLIPVisionConfig(**CLIP)).save_pretrained(root / "clip")
    return root


def test_random_frozen_towers_refuse_to_build_naming_the_modules(tmp_path):
    with pytest.raises(ConfigError) as err:
        build_preset(tmp_path, "pllava/tiny", "model.allow_random_frozen=false")
    message = str(err.value)
    assert message.startswith("model.allow_random_frozen:")
    named = [line.split(":")[0].strip() for line in message.splitlines() if "frozen parameters" in line]
    assert named == ["model.llm", "model.branches.0.encoder"]  # not the trainable projector or pooling


def test_loaded_towers_build_and_report_their_sources(tmp_path, published):
    model = build_preset(tmp_path, "pllava/tiny", "model.allow_random_frozen=false",
                         f"model.llm.pretrained={published / 'llama'}",
                         f"model.branches.0.encoder.pretrained={published / 'clip'}")
    report = model.weight_sources
    assert set(report["llm"]) == {f"{published / 'llama'} (transformers)", RANDOM_TRAINABLE}  # base + LoRA
    assert set(report["branches.0.encoder"]) == {f"{published / 'clip'} (transformers CLIPVisionModel)"}
    assert set(report["branches.0.stages.0"]) == {RANDOM_TRAINABLE}  # the projector trains from scratch
    saved = CLIPVisionModel.from_pretrained(published / "clip").state_dict()
    ours = model.branches[0].encoder.model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in saved.items() if k in ours)


def test_missing_weights_in_a_checkpoint_stay_random(tmp_path, published):
    # transformers initialises what a checkpoint lacks: those tensors must not count as loaded
    broken = tmp_path / "llama_without_norm"
    model = LlamaForCausalLM.from_pretrained(published / "llama")
    state = {k: v for k, v in model.state_dict().items() if k != "model.norm.weight"}
    model.save_pretrained(broken, state_dict=state)
    with pytest.raises(ConfigError, match=r"model\.llm: 64 frozen parameters"):  # model.norm.weight
        build_preset(tmp_path, "pllava/tiny", "model.allow_random_frozen=false", f"model.llm.pretrained={broken}",
                     f"model.branches.0.encoder.pretrained={published / 'clip'}")


def test_recording_loads_marks_exactly_what_a_loader_wrote():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    net.requires_grad_(False)
    with recording_loads(net, "ckpt.safetensors (vlmkit)"), torch.no_grad():
        net[0].weight.copy_(torch.ones(2, 2))
    assert source_report(net) == {"0": {"ckpt.safetensors (vlmkit)": 4, "random (frozen)": 2},
                                  "1": {"random (frozen)": 6}}


def test_meta_builds_are_not_checked(tmp_path):
    model = build_preset(tmp_path, "pllava/tiny", "model.allow_random_frozen=false", meta=True)
    assert next(model.parameters()).is_meta
