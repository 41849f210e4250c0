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
from tests.models.published_keys import internvideo2_stage2
from tests.models.test_published_key_lists import llava_next_hub_names
from tests.models.tiny_published_checkpoints import (blip2_flant5_checkpoint, eva_vit_g_checkpoint, random_tensors,
                                                     video_llama_checkpoint)
from vlmkit.assemble import build_model
from vlmkit.config import CONFIG_ROOT, load_config
from vlmkit.errors import ConfigError
from vlmkit.schema import to_plain

ROOT = Path(__file__).resolve().parents[2]
# the demo's and the README first run's configs are tiny by design
FULL_SIZE = sorted(p for p in ROOT.glob("train_configs/**/*.yaml") if p.parts[-2] not in ("demo", "tiny"))


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
    if "tie_word_embeddings" in spec["config"]:  # T5Config drops it (Flan-T5 has its own lm_head)
        config.tie_word_embeddings = spec["config"]["tie_word_embeddings"]
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    auto.from_config(config).save_pretrained(folder)


def weight_settings(train_config: Path) -> tuple[dict, list[str]]:
    """The shipped config's weight settings: init_weights (a model section) and pretrained paths (overrides)."""
    model = to_plain(load_config(train_config, purpose="train").model)
    section = {"init_weights": model["init_weights"]} if model.get("init_weights") else {}
    overrides = [f"model.llm.pretrained={model['llm']['pretrained']}"] if model["llm"].get("pretrained") else []
    overrides += [f"model.branches.{i}.encoder.pretrained={b['encoder']['pretrained']}"
                  for i, b in enumerate(model["branches"]) if b["encoder"].get("pretrained")]
    if (model.get("selector") or {}).get("pretrained"):
        overrides.append(f"model.selector.pretrained={model['selector']['pretrained']}")
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


def write_video_llama(weights: Path, stage2: bool) -> None:
    """The published files under their names and layouts (tiny_published_checkpoints: names from LAVIS's and
    Video-LLaMA's model code, not from vlmkit's key maps)."""
    save_llm("tiny_llama", weights / "vicuna-7b-v1.5")
    torch.save(eva_vit_g_checkpoint(), weights / "eva_vit_g.pth")
    torch.save({"model": blip2_flant5_checkpoint()}, weights / "blip2_pretrained_flant5xxl.pth")
    # MiniGPT-4 (minigpt4/models/mini_gpt4.py) saves its trained llama_proj Linear(Q-Former width, LLaMA width) only
    torch.save({"model": random_tensors({"llama_proj.weight": (64, 32), "llama_proj.bias": (64,)}, seed=5)},
               weights / "pretrained_minigpt4_7b.pth")
    if stage2:
        torch.save({"model": video_llama_checkpoint()}, weights / "pretrain-vicuna7b.pth")


@pytest.mark.parametrize("stage", ["stage1_pretrain", "stage2_instruct"])
def test_video_llama_trains_from_the_published_files(tmp_path, weights, stage):
    config = ROOT / "train_configs" / "video_llama" / f"{stage}.yaml"
    write_video_llama(weights, stage2=stage == "stage2_instruct")
    model = build_tiny_with_shipped_weights(tmp_path, config, "video_llama/tiny")
    assert_frozen_loaded(model, weights)
    eva = torch.load(weights / "eva_vit_g.pth")
    q_bias, k_bias, v_bias = model.branches[0].encoder.model.encoder.layers[1].self_attn.qkv.bias.chunk(3)
    assert torch.equal(q_bias, eva["blocks.1.attn.q_bias"]) and torch.equal(v_bias, eva["blocks.1.attn.v_bias"])
    assert not k_bias.any()
    ln = torch.load(weights / "blip2_pretrained_flant5xxl.pth")["model"]["ln_vision.weight"]
    assert torch.equal(model.branches[0].encoder.model.post_layernorm.weight, ln)
    if stage == "stage1_pretrain":  # Video-LLaMA's llama_proj_model: stage 1 starts from MiniGPT-4's projection
        minigpt4 = torch.load(weights / "pretrained_minigpt4_7b.pth")["model"]
        assert torch.equal(model.branches[0].stages[2].proj.weight, minigpt4["llama_proj.weight"])
    trains_three_steps(model)
    refusal_names_modules(tmp_path, config, "video_llama/tiny", "model.llm", "model.branches.0.encoder",
                          "model.branches.0.stages.0")


def test_pllava_trains_from_the_llava_hf_folder(tmp_path, weights):
    config = ROOT / "train_configs" / "pllava" / "finetune_7b.yaml"
    folder = weights / "llava-v1.6-vicuna-7b-hf"
    folder.mkdir()
    import safetensors.torch

    # the released llava-hf names (transformers' LlavaNextForConditionalGeneration, as the 4.x release saved it)
    safetensors.torch.save_file(random_tensors(llava_next_hub_names(tmp_path)), str(folder / "model.safetensors"))
    model = build_tiny_with_shipped_weights(tmp_path, config, "pllava/tiny")
    assert_frozen_loaded(model, weights)
    trains_three_steps(model)
    refusal_names_modules(tmp_path, config, "pllava/tiny", "model.llm", "model.branches.0.encoder")


def test_llmva_gebc_builds_from_opt_and_the_video_llama_adapter(tmp_path, weights):
    config = ROOT / "train_configs" / "llmva_gebc" / "opt13b_kinetics_gebc.yaml"
    save_llm("tiny_opt", weights / "opt-13b")
    torch.save(video_llama_checkpoint(), weights / "pretrain-vicuna13b.pth")
    model = build_tiny_with_shipped_weights(tmp_path, config, "gebc/tiny")
    assert_frozen_loaded(model, weights)
    refusal_names_modules(tmp_path, config, "gebc/tiny", "model.llm")


# ------------------------------------------------------------------- VideoGPT+, VideoTGB, Video-XL
def save_clip(encoder, folder: Path) -> None:
    """openai/clip-vit-large-patch14-336's layout: a whole CLIPModel folder (text tower too) of the tiny tower."""
    from transformers import CLIPConfig, CLIPModel

    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=100)
    CLIPModel(CLIPConfig(vision_config=encoder.model.config.to_dict(), text_config=text,
                         projection_dim=16)).save_pretrained(folder)


def save_run(model, folder: Path) -> None:
    """What vlmkit's trainer writes for a run: its trainable tensors in model.safetensors."""
    import safetensors.torch

    folder.mkdir(parents=True)
    safetensors.torch.save_file({name: p.detach().contiguous() for name, p in model.named_parameters()
                                 if p.requires_grad}, str(folder / "model.safetensors"))


def test_videogpt_plus_trains_from_phi3_clip_and_internvideo2(tmp_path, weights):
    config = ROOT / "train_configs" / "videogpt_plus" / "finetune_phi3_mini.yaml"
    reference = random_tiny(tmp_path, "videogpt_plus/tiny", "model.allow_random_frozen=true")
    save_llm("tiny_phi3", weights / "Phi-3-mini-4k-instruct")
    save_clip(reference.branches[0].encoder, weights / "clip-vit-large-patch14-336")
    internvideo2 = weights / "InternVideo2-Stage2_1B-224p-f4" / "InternVideo2-stage2_1b-224p-f4.pt"
    internvideo2.parent.mkdir()
    # InternVideo2's own names (published_keys) at the tiny tower's sizes, distillation heads included (not used)
    state = random_tensors(internvideo2_stage2(width=24, depth=3, mlp_hidden=48, image_size=16, patch_size=4,
                                               frames=4))
    torch.save({"module": state}, internvideo2)
    model = build_tiny_with_shipped_weights(tmp_path, config, "videogpt_plus/tiny")
    assert_frozen_loaded(model, weights)
    assert torch.equal(model.branches[1].encoder.blocks[0].attn.qkv.weight,
                       state["vision_encoder.blocks.0.attn.qkv.weight"])
    trains_three_steps(model)
    refusal_names_modules(tmp_path, config, "videogpt_plus/tiny", "model.llm", "model.branches.0.encoder",
                          "model.branches.1.encoder")


def save_blip2_hf(folder: Path, text_preset: str, instruct: bool) -> None:
    """Salesforce/blip2-flan-t5-xl or instructblip-vicuna-7b as transformers saves them, at the tiny sizes."""
    from transformers import (AutoConfig, Blip2Config, Blip2ForConditionalGeneration, InstructBlipConfig,
                              InstructBlipForConditionalGeneration)

    spec = yaml.safe_load((CONFIG_ROOT / "models" / "llms" / f"{text_preset}.yaml").read_text())
    text = AutoConfig.for_model(spec["arch"], **spec["config"]).to_dict()
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                  patch_size=8)
    qformer = dict(hidden_size=32, num_attention_heads=4, intermediate_size=64, num_hidden_layers=2,
                   cross_attention_frequency=1, encoder_hidden_size=32, vocab_size=512)
    config_class, model_class = ((InstructBlipConfig, InstructBlipForConditionalGeneration) if instruct
                                 else (Blip2Config, Blip2ForConditionalGeneration))
    model_class(config_class(vision_config=vision, qformer_config=qformer, text_config=text,
                             num_query_tokens=4)).save_pretrained(folder)


def test_videotgb_stages_train_from_the_published_folders_and_chain_the_sampler(tmp_path, weights, monkeypatch):
    """Sampler stage from flan-t5-xl, blip2-flan-t5-xl and bert-base-uncased; the fixed-sampler stage from
    vicuna-7b-v1.1, instructblip-vicuna-7b and the sampler stage's run, which alone fills its frozen sampler."""
    from transformers import BertConfig, BertModel

    from tests.models.test_videotgb_recipes import ANSWERS, QUESTIONS, SPANS, with_question

    monkeypatch.chdir(tmp_path)  # the fixed-sampler stage reads ./output/videotgb_sampler_stage
    stages = ROOT / "train_configs" / "videotgb"
    save_llm("tiny_t5", weights / "flan-t5-xl")
    save_blip2_hf(weights / "blip2-flan-t5-xl", "tiny_t5", instruct=False)
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                         vocab_size=512)).save_pretrained(weights / "bert-base-uncased")
    save_llm("tiny_llama", weights / "vicuna-7b-v1.1")
    save_blip2_hf(weights / "instructblip-vicuna-7b", "tiny_llama", instruct=True)

    def train(model):
        batch = with_question(model, batch_for(model, QUESTIONS, ANSWERS), QUESTIONS, SPANS)
        assert all(torch.isfinite(torch.tensor(train_steps(model, batch, steps=3))))

    # the sampler stage's freezing: only the sampler trains
    sampler_stage = build_tiny_with_shipped_weights(
        tmp_path, stages / "sampler_stage.yaml", "videotgb/tiny_t5", "model.llm.freeze=true",
        "model.branches.0.stages.0.freeze=true", "model.branches.0.stages.1.freeze=true")
    assert_frozen_loaded(sampler_stage, weights)
    assert {n.split(".")[0] for n, p in sampler_stage.named_parameters() if p.requires_grad} == {"selector"}
    train(sampler_stage)
    save_run(sampler_stage, tmp_path / "output" / "videotgb_sampler_stage")

    fixed = ["model.selector.freeze=true", "model.selector.train_frames=label_span"]  # the full preset's settings
    model = build_tiny_with_shipped_weights(tmp_path, stages / "fixed_sampler_stage.yaml", "videotgb/tiny_llama",
                                            *fixed)
    assert_frozen_loaded(model, weights)
    assert set(model.weight_sources["selector"]) == {"./output/videotgb_sampler_stage (vlmkit)"}
    trained = dict(sampler_stage.selector.named_parameters())
    assert all(torch.equal(p, trained[n]) for n, p in model.selector.named_parameters())
    train(model)
    # without the sampler-stage run, the frozen sampler would stay random: refused, naming it
    section, overrides = weight_settings(stages / "fixed_sampler_stage.yaml")
    OmegaConf.save({"model": {"preset": "videotgb/tiny_llama", "init_weights": section["init_weights"][:1]}},
                   tmp_path / "no_sampler.yaml")
    with pytest.raises(ConfigError, match="allow_random_frozen") as err:
        build_model(load_config(tmp_path / "no_sampler.yaml", [*overrides, *fixed, "model.allow_random_frozen=false"]))
    assert "model.selector" in str(err.value) and "model.branches.0.encoder" not in str(err.value), str(err.value)
    refusal_names_modules(tmp_path, stages / "sampler_stage.yaml", "videotgb/tiny_t5", "model.branches.0.encoder")


@pytest.mark.slow  # 18-30 s on 2 busy cores
def test_video_xl_pretrains_from_qwen2_and_clip_then_finetunes_from_that_run(tmp_path, weights, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the fine-tune stage reads ./output/video_xl_pretrain_qwen2_7b
    stages = ROOT / "train_configs" / "video_xl"
    reference = random_tiny(tmp_path, "video_xl/tiny", "model.allow_random_frozen=true")
    save_llm("tiny_qwen2", weights / "Qwen2-7B-Instruct")
    save_clip(reference.branches[0].encoder, weights / "clip-vit-large-patch14-336")
    # pretrain.sh: the projector alone trains, on the plain model with CLIP's second-to-last layer
    pretrain = build_tiny_with_shipped_weights(tmp_path, stages / "pretrain_qwen2_7b.yaml", "video_xl/tiny",
                                               "model.llm.compress=false", "model.llm.freeze=true",
                                               "model.branches.0.encoder.select_layer=-2")
    assert_frozen_loaded(pretrain, weights)
    trains_three_steps(pretrain)
    save_run(pretrain, tmp_path / "output" / "video_xl_pretrain_qwen2_7b")
    # finetune_v.sh: everything trains, starting from the pretrained projector
    model = build_tiny_with_shipped_weights(tmp_path, stages / "finetune_qwen2_7b.yaml", "video_xl/tiny",
                                            "model.branches.0.encoder.freeze=false")
    assert "./output/video_xl_pretrain_qwen2_7b (vlmkit)" in model.weight_sources["branches.0.stages.0"]
    trained = dict(pretrain.branches[0].stages[0].named_parameters())
    assert all(torch.equal(p, trained[n]) for n, p in model.branches[0].stages[0].named_parameters())
    assert any(str(weights / "Qwen2-7B-Instruct") in s for s in model.weight_sources["llm"])
    trains_three_steps(model)
    refusal_names_modules(tmp_path, stages / "pretrain_qwen2_7b.yaml", "video_xl/tiny", "model.branches.0.encoder")
