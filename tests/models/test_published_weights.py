"""Shipped recipes name their published starting weights under $VLMKIT_WEIGHTS (docs/weights.md).

Without the files every full-size train config refuses to build, naming each missing path, its key and layout.
With tiny checkpoints written under the published names and layouts, each recipe's tiny model, given the weight
settings of the shipped config, builds with every frozen module loaded from them and trains 3 steps.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from tests.models.recipe_helpers import batch_for, train_steps
from tests.models.test_checkpoint_keymaps import lavis_qformer, video_llama_checkpoint
from tests.models.test_recipes_pllava import llava_hf_state
from vlmkit.assemble import build_model
from vlmkit.config import CONFIG_ROOT, load_config
from vlmkit.errors import ConfigError
from vlmkit.schema import to_plain

ROOT = Path(__file__).resolve().parents[2]
FULL_SIZE = sorted(p for p in ROOT.glob("train_configs/**/*.yaml") if p.parts[-2] != "demo")


@pytest.fixture
def weights(tmp_path, monkeypatch):
    root = tmp_path / "weights"
    root.mkdir()
    monkeypatch.setenv("VLMKIT_WEIGHTS", str(root))
    return root


@pytest.mark.parametrize("path", FULL_SIZE, ids=lambda p: str(p.relative_to(ROOT)))
def test_full_size_train_config_without_weights_refuses_naming_the_files(path, weights):
    cfg = load_config(path, purpose="train")
    with pytest.raises(ConfigError) as err, torch.device("meta"):
        build_model(cfg)
    message = str(err.value)
    assert f"{weights}/" in message and "does not exist" in message and "expected" in message, message
    assert "model.llm.pretrained" in message or "model.init_weights.0.path" in message, message


# ---------------------------------------------------------------- tiny checkpoints under the published names
def save_llm(preset: str, folder: Path) -> None:
    """A transformers folder of the tiny LLM preset's architecture (random values)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    spec = yaml.safe_load((CONFIG_ROOT / "models" / "llms" / f"{preset}.yaml").read_text())
    config = AutoConfig.for_model(spec["arch"], **spec["config"])
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    auto.from_config(config).save_pretrained(folder)


def eva_lavis(encoder) -> dict:
    """LAVIS's eva_vit_g.pth names for a Blip2VisionModel tower (the inverse of layout eva_vit_lavis)."""
    out = {}
    for key, value in encoder.model.state_dict().items():
        key = key.replace("embeddings.class_embedding", "cls_token").replace("embeddings.position_embedding", "pos_embed")
        key = key.replace("embeddings.patch_embedding.", "patch_embed.proj.").replace("encoder.layers.", "blocks.")
        key = key.replace("layer_norm1", "norm1").replace("layer_norm2", "norm2").replace("self_attn.projection", "attn.proj")
        key = key.replace("self_attn.", "attn.")
        if key.endswith("attn.qkv.bias"):  # LAVIS: q_bias and v_bias (the key projection has no bias)
            q_bias, _, v_bias = torch.randn_like(value).chunk(3)
            out[key.replace("qkv.bias", "q_bias")], out[key.replace("qkv.bias", "v_bias")] = q_bias, v_bias
        elif not key.startswith("post_layernorm"):
            out[key] = torch.randn_like(value)
    return out


def weight_settings(train_config: Path) -> tuple[dict, list[str]]:
    """The shipped config's weight settings: init_weights (a model section) and pretrained paths (overrides)."""
    model = to_plain(load_config(train_config, purpose="train").model)
    section = {"init_weights": model["init_weights"]} if model.get("init_weights") else {}
    overrides = [f"model.llm.pretrained={model['llm']['pretrained']}"] if model["llm"].get("pretrained") else []
    overrides += [f"model.branches.{i}.encoder.pretrained={b['encoder']['pretrained']}"
                  for i, b in enumerate(model["branches"]) if b["encoder"].get("pretrained")]
    return section, overrides


def build_tiny_with_shipped_weights(tmp_path, train_config: Path, tiny_preset: str, *extra: str):
    section, overrides = weight_settings(train_config)
    path = tmp_path / "exp.yaml"
    OmegaConf.save({"model": {"preset": tiny_preset, **section}}, path)
    return build_model(load_config(path, [*overrides, "model.allow_random_frozen=false", *extra]))


def random_tiny(tmp_path, preset: str, *overrides: str):
    path = tmp_path / "random.yaml"
    path.write_text(f"model: {{preset: {preset}}}\n")
    return build_model(load_config(path, list(overrides)))


def trains_three_steps(model) -> None:
    batch = batch_for(model, ["what happens?", "who is there?"], ["a dog runs", "a cat"])
    losses = train_steps(model, batch, steps=3)
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))


def assert_frozen_loaded(model, weights: Path) -> None:
    """Every frozen component reports one of the files under ``weights`` as its source."""
    for component, sources in model.weight_sources.items():
        assert "random (frozen)" not in sources, (component, sources)
    assert any(str(weights) in source for sources in model.weight_sources.values() for source in sources)


def refusal_names_modules(tmp_path, train_config: Path, tiny_preset: str, *modules: str) -> None:
    """The same tiny recipe, loading nothing, refuses to build and names the frozen modules."""
    with pytest.raises(ConfigError, match="allow_random_frozen") as err:
        random_tiny(tmp_path, tiny_preset, "model.allow_random_frozen=false")
    for module in modules:
        assert module in str(err.value), str(err.value)


def write_video_llama(weights: Path, tmp_path, stage2: bool) -> torch.nn.Module:
    reference = random_tiny(tmp_path, "video_llama/tiny", "model.allow_random_frozen=true")
    save_llm("tiny_llama", weights / "vicuna-7b-v1.5")
    torch.save(eva_lavis(reference.branches[0].encoder), weights / "eva_vit_g.pth")
    qformer = reference.branches[0].stages[0]
    blip2 = {**lavis_qformer(qformer.qformer.state_dict(), "Qformer."),
             "query_tokens": torch.randn_like(qformer.query_tokens),
             "ln_vision.weight": torch.randn(32), "ln_vision.bias": torch.randn(32),
             "t5_proj.weight": torch.randn(2048, 32), "vision_proj.weight": torch.randn(8, 32)}
    torch.save({"model": blip2}, weights / "blip2_pretrained_flant5xxl.pth")
    if stage2:
        torch.save({"model": video_llama_checkpoint(reference)}, weights / "pretrain-vicuna7b.pth")
    return reference


@pytest.mark.parametrize("stage", ["stage1_pretrain", "stage2_instruct"])
def test_video_llama_trains_from_the_published_files(tmp_path, weights, stage):
    config = ROOT / "train_configs" / "video_llama" / f"{stage}.yaml"
    write_video_llama(weights, tmp_path, stage2=stage == "stage2_instruct")
    model = build_tiny_with_shipped_weights(tmp_path, config, "video_llama/tiny")
    assert_frozen_loaded(model, weights)
    eva = torch.load(weights / "eva_vit_g.pth")
    q_bias, k_bias, v_bias = model.branches[0].encoder.model.encoder.layers[1].self_attn.qkv.bias.chunk(3)
    assert torch.equal(q_bias, eva["blocks.1.attn.q_bias"]) and torch.equal(v_bias, eva["blocks.1.attn.v_bias"])
    assert not k_bias.any()
    ln = torch.load(weights / "blip2_pretrained_flant5xxl.pth")["model"]["ln_vision.weight"]
    assert torch.equal(model.branches[0].encoder.model.post_layernorm.weight, ln)
    trains_three_steps(model)
    refusal_names_modules(tmp_path, config, "video_llama/tiny", "model.llm", "model.branches.0.encoder",
                          "model.branches.0.stages.0")


def test_pllava_trains_from_the_llava_hf_folder(tmp_path, weights):
    config = ROOT / "train_configs" / "pllava" / "finetune_7b.yaml"
    reference = random_tiny(tmp_path, "pllava/tiny", "model.allow_random_frozen=true")
    folder = weights / "llava-v1.6-vicuna-7b-hf"
    folder.mkdir()
    import safetensors.torch

    safetensors.torch.save_file({k: v.contiguous() for k, v in llava_hf_state(reference, "old").items()},
                                str(folder / "model.safetensors"))
    model = build_tiny_with_shipped_weights(tmp_path, config, "pllava/tiny")
    assert_frozen_loaded(model, weights)
    trains_three_steps(model)
    refusal_names_modules(tmp_path, config, "pllava/tiny", "model.llm", "model.branches.0.encoder")


def test_llmva_gebc_builds_from_opt_and_the_video_llama_adapter(tmp_path, weights):
    config = ROOT / "train_configs" / "llmva_gebc" / "opt13b_kinetics_gebc.yaml"
    save_llm("tiny_opt", weights / "opt-13b")
    torch.save(video_llama_checkpoint(random_tiny(tmp_path, "video_llama/tiny", "model.allow_random_frozen=true")),
               weights / "pretrain-vicuna13b.pth")
    model = build_tiny_with_shipped_weights(tmp_path, config, "gebc/tiny")
    assert_frozen_loaded(model, weights)
    refusal_names_modules(tmp_path, config, "gebc/tiny", "model.llm")
