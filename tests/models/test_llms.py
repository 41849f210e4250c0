"""LLM wrappers on tiny real transformers configs: losses, freezing, LoRA, attention backend, batched generation."""
from __future__ import annotations

import pathlib

import pytest
import torch
import yaml

from vlmkit.errors import ConfigError, DataError
from vlmkit.models.llms.base import resolve_attn_implementation
from vlmkit.models.llms.causal_lm import left_align
from vlmkit.models.prompting import pad_sequences
from vlmkit.registry import LLMS

PRESETS = pathlib.Path(__file__).resolve().parents[2] / "vlmkit" / "configs" / "models" / "llms"
CAUSAL = ["tiny_llama", "tiny_opt", "tiny_qwen2", "tiny_phi3"]


def tiny(name: str, **overrides):
    torch.manual_seed(0)
    cfg = {**yaml.safe_load((PRESETS / f"{name}.yaml").read_text()), **overrides}
    return LLMS.build(cfg).eval()


@pytest.fixture(scope="module")
def llama():
    return tiny("tiny_llama")


def ids_of(model, texts):
    return [model.tokenizer(t)["input_ids"] for t in texts]


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_loss_from_embeds_equals_loss_from_ids(name):
    model = tiny(name)
    batch = pad_sequences(ids_of(model, ["the cat is black", "a dog runs to the red ball"]), 0)
    mask = (torch.arange(batch.shape[1])[None] < torch.tensor([[5], [8]])).long()
    labels = batch.masked_fill(mask == 0, -100)
    out = model(model.embed(batch), mask, labels)
    reference = model.model(input_ids=batch, attention_mask=mask, labels=labels)
    assert torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss, reference.loss)
    assert out.logits.shape == (2, batch.shape[1], model.model.config.vocab_size)


def test_seq2seq_loss_from_embeds_equals_loss_from_ids():
    model = tiny("tiny_t5")
    assert model.is_encoder_decoder
    source = torch.tensor(ids_of(model, ["what color is the cat ?"]))
    target = torch.tensor(ids_of(model, ["black"]))
    out = model(model.embed(source), torch.ones_like(source), target)
    reference = model.model(input_ids=source, labels=target)
    assert torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss, reference.loss)


def test_hidden_size_and_tokenizer_fit_the_embedding_table(llama):
    assert llama.hidden_size == 64
    assert llama.model.get_input_embeddings().num_embeddings >= len(llama.tokenizer)
    preset = yaml.safe_load((PRESETS / "tiny_llama.yaml").read_text())
    model = tiny("tiny_llama", config={**preset["config"], "vocab_size": len(llama.tokenizer)})
    [new_id] = model.add_special_tokens(["<|new_marker|>"])
    assert new_id == len(llama.tokenizer)
    assert model.model.get_input_embeddings().num_embeddings == len(llama.tokenizer) + 1
    assert model.embed(torch.tensor([[new_id]])).shape == (1, 1, 64)


def test_freeze_leaves_no_trainable_parameter():
    model = tiny("tiny_llama", freeze=True)
    assert model.parameter_count(trainable_only=True) == 0
    assert tiny("tiny_llama").parameter_count(trainable_only=True) == model.parameter_count()


@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "v_proj"]])
def test_lora_trains_only_lora_layers(targets):
    model = tiny("tiny_llama", lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": targets})
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    wrapped = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable}
    expected = {"q_proj", "v_proj"} if isinstance(targets, list) else \
        {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert wrapped == expected  # all-linear never wraps lm_head
    ids = torch.tensor(ids_of(model, ["the cat is black"]))
    model.train()
    model(model.embed(ids), torch.ones_like(ids), ids).loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad and "lora_B" in n)
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)


def test_lora_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="missing required key 'r' for LoraSettings"):
        tiny("tiny_llama", lora={"alpha": 8})
    with pytest.raises(ConfigError, match="unknown key 'lora_alpha' for LoraSettings"):
        tiny("tiny_llama", lora={"r": 4, "lora_alpha": 8})


def test_gradient_checkpointing_backward_with_frozen_embeddings():
    model = tiny("tiny_llama", gradient_checkpointing=True).train()
    model.model.get_input_embeddings().requires_grad_(False)
    ids = torch.tensor(ids_of(model, ["the cat is black"]))
    model(model.embed(ids), torch.ones_like(ids), ids).loss.backward()
    assert getattr(model.model, "is_activation_checkpointing", None) or model.model.is_gradient_checkpointing
    assert model.model.model.layers[0].self_attn.q_proj.weight.grad is not None


def test_attention_falls_back_to_sdpa_without_flash_attn(llama):
    assert llama.attn_implementation == "sdpa"  # no flash_attn/CUDA on the test machine
    assert resolve_attn_implementation("auto", type(llama.model)) == "sdpa"
    assert tiny("tiny_llama", attn_implementation="eager").attn_implementation == "eager"


def test_unknown_config_key_is_rejected_by_the_schema():
    with pytest.raises(ConfigError, match="attn_impl"):
        LLMS.build({"name": "causal_lm", "arch": "llama", "config": {}, "attn_impl": "sdpa"})
    with pytest.raises(ConfigError, match="arch"):
        LLMS.build({"name": "causal_lm", "config": {"hidden_size": 8}})


@pytest.mark.parametrize("name", ["tiny_llama", "tiny_opt", "tiny_qwen2"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_batched_generation_equals_one_by_one(name, side):
    model = tiny(name)
    prompts = ids_of(model, ["the cat", "a man walks to the red door and opens", "where is the dog ?"])
    batch = pad_sequences(prompts, model.tokenizer.pad_token_id, side)
    mask = pad_sequences([[1] * len(p) for p in prompts], 0, side)
    options = dict(max_new_tokens=6, do_sample=False, eos_token_id=None)
    together = model.generate(model.embed(batch), mask, **options)
    for row, prompt in enumerate(prompts):
        ids = torch.tensor([prompt])
        alone = model.generate(model.embed(ids), torch.ones_like(ids), **options)
        assert together[row].tolist() == alone[0].tolist()


def test_seq2seq_batched_generation_equals_one_by_one():
    model = tiny("tiny_t5")
    prompts = ids_of(model, ["the cat", "a man walks to the red door"])
    batch = pad_sequences(prompts, 0)
    mask = pad_sequences([[1] * len(p) for p in prompts], 0)
    options = dict(max_new_tokens=4, do_sample=False, eos_token_id=None)
    together = model.generate(model.embed(batch), mask, **options)
    for row, prompt in enumerate(prompts):
        ids = torch.tensor([prompt])
        assert together[row].tolist() == model.generate(model.embed(ids), **options)[0].tolist()


def test_left_align_moves_valid_positions_and_rejects_holes():
    embeds = torch.arange(8, dtype=torch.float).view(2, 4, 1)
    aligned, mask = left_align(embeds, torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]))
    assert aligned[0, :, 0].tolist() == [0, 0, 0, 1] and mask[0].tolist() == [0, 0, 1, 1]
    assert torch.equal(aligned[1], embeds[1])
    with pytest.raises(DataError, match="contiguous"):
        left_align(embeds, torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1]]))
