"""Each published layout loads strictly from a tiny checkpoint written under names and shapes taken from the
upstream model classes, never from vlmkit's own key maps, and fills every parameter of the parts it targets.

Where each key list comes from:
- transformers layouts: the classes themselves (``Blip2ForConditionalGeneration``,
  ``InstructBlipForConditionalGeneration``, ``LlavaNextForConditionalGeneration``) built from small configs on the
  meta device, and for LLaVA-NeXT also what transformers' ``save_pretrained`` writes (its own conversion mapping
  run backwards);
- LAVIS / Video-LLaMA layouts: ``tests/models/published_keys.py``, written from LAVIS's and Video-LLaMA's model
  code (files and classes named there) and checked against LAVIS's ``BertLMHeadModel`` on the meta device;
- PLLaVA, Video-XL, LLMVA-GEBC: peft's / transformers' classes on meta for the LLM parts, the rest from the
  released model code (named in each test).
"""
from __future__ import annotations

import re

import pytest
import safetensors.torch
import torch
from transformers import (Blip2Config, Blip2ForConditionalGeneration, InstructBlipConfig,
                          InstructBlipForConditionalGeneration, LlavaNextConfig, LlavaNextForConditionalGeneration)

from tests.models.published_keys import (BertQFormerSize, lavis_bert_qformer, lavis_blip2_opt, lavis_blip2_stage1,
                                         video_llama_video_branch)
from vlmkit.assemble import build_model
from vlmkit.config import load_config
from vlmkit.models.weight_sources import RANDOM_FROZEN, RANDOM_TRAINABLE, source_report, weight_source

ENC, QF, VQ, PROJ = "branches.0.encoder", "branches.0.stages.0", "branches.0.stages.1", "branches.0.stages.2"
# the tiny presets' EVA tower (Blip2VisionModel) and OPT / LLaMA sizes
EVA = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
           patch_size=8)
TINY_OPT = dict(model_type="opt", hidden_size=64, ffn_dim=128, num_hidden_layers=1, num_attention_heads=4,
                vocab_size=100, word_embed_proj_dim=64)
TINY_LLAMA = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=512, tie_word_embeddings=False)


def class_shapes(model_class, config) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = model_class(config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def write(path, shapes) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    state = {name: (torch.arange(shape[-1])[None] if name.endswith("position_ids") else torch.randn(shape))
             for name, shape in shapes.items()}
    if str(path).endswith(".safetensors"):
        safetensors.torch.save_file(state, str(path))
    else:
        torch.save({"model": state}, path)
    return state


def build(tmp_path, preset, path=None, layout=None, targets=""):
    config = tmp_path / "exp.yaml"
    init = f"\n  init_weights: [{{path: '{path}', layout: {layout}{', targets: ' + targets if targets else ''}}}]" \
        if path else ""
    config.write_text(f"model:\n  preset: {preset}{init}\n")
    torch.manual_seed(0)
    return build_model(load_config(config))


def from_file(model, components, path, layout) -> None:
    """Every parameter of each component holds values the loader wrote."""
    report = source_report(model, components)
    for component in components:
        assert set(report[component]) == {f"{path} ({layout})"}, (component, report[component])


# ------------------------------------------------------------------------------------------ transformers
def test_transformers_instructblip_names_fill_the_videotgb_qformer_tower_and_projection(tmp_path):
    config = InstructBlipConfig(
        vision_config=EVA, text_config=TINY_LLAMA, num_query_tokens=4,
        qformer_config=dict(hidden_size=32, num_attention_heads=4, intermediate_size=64, vocab_size=512,
                            num_hidden_layers=2, cross_attention_frequency=1, encoder_hidden_size=32))
    shapes = class_shapes(InstructBlipForConditionalGeneration, config)
    assert "qformer.embeddings.word_embeddings.weight" in shapes and "language_model.lm_head.weight" in shapes
    path = tmp_path / "instructblip.safetensors"
    state = write(path, shapes)
    model = build(tmp_path, "videotgb/tiny_llama", path, "blip2_hf", f"{{qformer: {QF}, encoder: {ENC}, "
                                                                      f"projector: {PROJ}}}")
    from_file(model, [QF, PROJ], path, "blip2_hf")
    assert source_report(model, [ENC])[ENC] == {f"{path} (blip2_hf)": sum(
        state[k].numel() for k in state if k.startswith("vision_model."))}
    assert torch.equal(model.get_submodule(QF).qformer.embeddings.layernorm.weight,
                       state["qformer.embeddings.layernorm.weight"])


# BLIP-2 at video_llama/tiny's sizes (EVA tower, Q-Former with cross-attention every 2nd layer, 4 queries)
BLIP2_TINY = Blip2Config(vision_config=EVA, text_config=TINY_OPT, num_query_tokens=4,
                         qformer_config=dict(hidden_size=32, num_attention_heads=4, intermediate_size=64,
                                             num_hidden_layers=2, cross_attention_frequency=2,
                                             encoder_hidden_size=32))


def test_transformers_blip2_names_fill_the_video_llama_qformer_and_tower(tmp_path):
    shapes = class_shapes(Blip2ForConditionalGeneration, BLIP2_TINY)
    path = tmp_path / "blip2.safetensors"
    write(path, shapes)
    model = build(tmp_path, "video_llama/tiny", path, "blip2_hf", f"{{qformer: {QF}, encoder: {ENC}}}")
    from_file(model, [QF, ENC], path, "blip2_hf")


LLAVA_NEXT = LlavaNextConfig(
    vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                       num_attention_heads=4, image_size=32, patch_size=8),
    text_config=TINY_LLAMA, vision_feature_layer=-2)


def llava_next_saved_names(tmp_path) -> dict[str, tuple[int, ...]]:
    """What transformers' save_pretrained writes for LlavaNextForConditionalGeneration (legacy top-level names)."""
    LlavaNextForConditionalGeneration(LLAVA_NEXT).save_pretrained(tmp_path / "saved")
    return {k: tuple(v.shape) for k, v in safetensors.torch.load_file(tmp_path / "saved" / "model.safetensors").items()}


def llava_next_hub_names(tmp_path) -> dict[str, tuple[int, ...]]:
    """The released llava-hf files, written by transformers 4.x, whose CLIPVisionModel nested its tower under
    'vision_model.': the 'saved' names with that level put back."""
    return {re.sub(r"^vision_tower\.(?!vision_model\.)", "vision_tower.vision_model.", k): v
            for k, v in llava_next_saved_names(tmp_path).items()}


@pytest.mark.parametrize("names", ["class", "saved", "hub"])
def test_llava_next_names_fill_the_pllava_llm_tower_and_projector(tmp_path, names):
    """'class': the class's state_dict; 'saved': what save_pretrained writes; 'hub': the released llava-hf files,
    written by transformers 4.x, whose CLIPVisionModel nested its tower under 'vision_model.' (the 'saved' names with
    that level put back)."""
    if names == "class":
        shapes = class_shapes(LlavaNextForConditionalGeneration, LLAVA_NEXT)
    else:
        shapes = llava_next_hub_names(tmp_path) if names == "hub" else llava_next_saved_names(tmp_path)
    assert {"image_newline", "model.image_newline"} & set(shapes)
    path = tmp_path / "llava_next.safetensors"
    write(path, shapes)
    model = build(tmp_path, "pllava/tiny", path, "llava_hf")
    report = source_report(model, ["llm", ENC, QF])
    loaded = f"{path} (llava_hf)"
    assert set(report[QF]) == {loaded}
    assert set(report["llm"]) == {loaded, RANDOM_TRAINABLE}  # the base from the file, LoRA adapters fresh
    assert RANDOM_FROZEN not in report[ENC] and loaded in report[ENC]


# ------------------------------------------------------------------------------------------ LAVIS family
SIZE = BertQFormerSize(hidden=32, intermediate=64, layers=2, cross_attention_freq=2, encoder_width=32, vocab=100)


@pytest.mark.parametrize("stage", ["blip2_pretrained", "blip2_opt"])
def test_lavis_blip2_names_fill_the_video_llama_qformer(tmp_path, stage):
    shapes = lavis_blip2_stage1(SIZE, 4, 32) if stage == "blip2_pretrained" else lavis_blip2_opt(SIZE, 4, 32, 64)
    path = tmp_path / f"{stage}.pth"
    state = write(path, shapes)
    model = build(tmp_path, "video_llama/tiny", path, "blip2_lavis", f"{{qformer: {QF}, encoder: {ENC}}}")
    from_file(model, [QF], path, "blip2_lavis")
    assert torch.equal(model.get_submodule(ENC).model.post_layernorm.weight, state["ln_vision.weight"])
    assert torch.equal(model.get_submodule(QF).qformer.layernorm.bias, state["Qformer.bert.embeddings.LayerNorm.bias"])


def test_a_bare_lavis_qformer_state_dict_fills_the_qformer(tmp_path):
    """``qformer_lavis``: LAVIS's BertLMHeadModel state dict itself ('bert.*', 'cls.*')."""
    path = tmp_path / "qformer.pth"
    write(path, lavis_bert_qformer("", SIZE, text=True, cls=True))
    model = build(tmp_path, "video_llama/tiny", path, "qformer_lavis", f"{{qformer: {QF}}}")
    assert set(source_report(model, [f"{QF}.qformer"])[f"{QF}.qformer"]) == {f"{path} (qformer_lavis)"}


def test_video_llama_and_minigpt4_names_fill_the_video_branch_and_projection(tmp_path):
    video = BertQFormerSize(hidden=32, intermediate=64, layers=2, cross_attention_freq=1, encoder_width=32)
    path = tmp_path / "pretrain-vicuna7b.pth"
    write(path, video_llama_video_branch(video, num_query=4, max_frame_pos=8, llm_hidden=64))
    model = build(tmp_path, "video_llama/tiny", path, "video_llama", f"{{video_qformer: {VQ}, projector: {PROJ}}}")
    from_file(model, [VQ, PROJ], path, "video_llama")
    minigpt4 = tmp_path / "prerained_minigpt4_7b.pth"  # MiniGPT-4's file: its trained llama_proj (Linear(H, 4096))
    state = write(minigpt4, {"llama_proj.weight": (64, 32), "llama_proj.bias": (64,)})
    model = build(tmp_path, "video_llama/tiny", minigpt4, "minigpt4", f"{{projector: {PROJ}}}")
    from_file(model, [PROJ], minigpt4, "minigpt4")
    assert torch.equal(model.get_submodule(PROJ).proj.bias, state["llama_proj.bias"])


# ------------------------------------------------------------------------------------------ PLLaVA, Video-XL
def pllava_saved_names() -> dict[str, tuple[int, ...]]:
    """PLLaVA (magic-research/PLLaVA models/pllava/modeling_pllava.py): ``PllavaForConditionalGeneration`` keeps the
    LLM as ``language_model``, wrapped by ``peft.get_peft_model`` (LoRA on q_proj/v_proj), and the projector
    ``PllavaMultiModalProjector`` (``linear_1`` vision->text width, ``linear_2`` text->text); it saves the state_dict
    entries whose names hold 'lora_' or 'multi_modal_projector'. The LoRA names come from peft's own wrapping of
    the tiny LLaMA (pllava/tiny: r=8)."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = {k: v for k, v in TINY_LLAMA.items() if k != "model_type"}
    with torch.device("meta"):
        lm = get_peft_model(LlamaForCausalLM(LlamaConfig(**llama)), LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    shapes = {f"language_model.{k}": tuple(v.shape) for k, v in lm.state_dict().items() if "lora_" in k}
    shapes.update({"multi_modal_projector.linear_1.weight": (64, 32), "multi_modal_projector.linear_1.bias": (64,),
                   "multi_modal_projector.linear_2.weight": (64, 64), "multi_modal_projector.linear_2.bias": (64,)})
    return shapes


def test_pllava_saved_names_fill_the_lora_adapters_and_projector(tmp_path):
    shapes = pllava_saved_names()
    assert "language_model.base_model.model.model.layers.1.self_attn.v_proj.lora_B.default.weight" in shapes
    path = tmp_path / "pllava-7b.safetensors"
    state = write(path, shapes)
    model = build(tmp_path, "pllava/tiny", path, "pllava")
    from_file(model, [QF], path, "pllava")
    lora = {n: p for n, p in model.llm.named_parameters() if ".lora_" in n}
    assert len(lora) == 8 and all(weight_source(p) == f"{path} (pllava)" for p in lora.values())
    assert torch.equal(model.get_submodule(QF).layers[2].bias, state["multi_modal_projector.linear_2.bias"])


def video_xl_released_names() -> dict[str, tuple[int, ...]]:
    """Video-XL's LlavaQwenForCausalLM at video_xl/tiny's sizes: transformers' Qwen2ForCausalLM names (the class on
    meta) plus, from Video-XL's modeling_qwen2.py, ``model.beacon_embed_tokens`` Embedding(1, H) and each attention's
    ``beacon_{q,k,v}_proj`` shaped as ``{q,k,v}_proj``; LLaVA-NeXT's ``model.mm_projector.{0,2}`` (mlp2x_gelu) and
    CLIPVisionTower ``model.vision_tower.vision_tower`` = a CLIPVisionModel saved by transformers 4.x (its tower
    under 'vision_model.')."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, Qwen2Config, Qwen2ForCausalLM

    qwen = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=512, tie_word_embeddings=True)
    shapes = class_shapes(Qwen2ForCausalLM, qwen)
    shapes.update({re.sub(r"\.([qkv])_proj\.", r".beacon_\1_proj.", k): v for k, v in shapes.items()
                   if re.search(r"self_attn\.[qkv]_proj\.", k)})
    shapes["model.beacon_embed_tokens.weight"] = (1, 64)
    shapes.update({"model.mm_projector.0.weight": (64, 32), "model.mm_projector.0.bias": (64,),
                   "model.mm_projector.2.weight": (64, 64), "model.mm_projector.2.bias": (64,)})
    clip = class_shapes(CLIPVisionModel, CLIPVisionConfig(**EVA))
    shapes.update({"model.vision_tower.vision_tower." + re.sub(r"^(?!vision_model\.)", "vision_model.", k): v
                   for k, v in clip.items()})
    return shapes


def test_video_xl_released_names_fill_the_beacon_llm_tower_and_projector(tmp_path):
    path = tmp_path / "Video-XL.safetensors"
    write(path, video_xl_released_names())
    model = build(tmp_path, "video_xl/tiny", path, "video_xl")
    from_file(model, ["llm", "branches.0.stages.0"], path, "video_xl")
    assert f"{path} (video_xl)" in source_report(model, [ENC])[ENC]
    assert RANDOM_FROZEN not in source_report(model, [ENC])[ENC]


def test_llmva_gebc_names_fill_the_video_branch_boundary_embedding_and_opt_proj(tmp_path):
    """LLMVA-GEBC (facts in /work/shared/reference/seed_systems.md, its video_blip2_opt_gebc model): Video-LLaMA's
    video branch (``video_Qformer`` with cross-attention in every layer, text parts removed, ``video_query_tokens``,
    ``video_frame_position_embedding``), ``temporal_pos_trans`` Linear(H, H) + ``temporal_pos_trans_norm`` LayerNorm,
    ``opt_proj`` Linear(H, OPT width)."""
    video = BertQFormerSize(hidden=32, intermediate=64, layers=2, cross_attention_freq=1, encoder_width=32)
    shapes = {k: v for k, v in video_llama_video_branch(video, 4, 8, 64).items() if not k.startswith("llama_proj")}
    shapes.update({"temporal_pos_trans.weight": (32, 32), "temporal_pos_trans.bias": (32,),
                   "temporal_pos_trans_norm.weight": (32,), "temporal_pos_trans_norm.bias": (32,),
                   "opt_proj.weight": (64, 32), "opt_proj.bias": (64,)})
    path = tmp_path / "gebc.pth"
    write(path, shapes)
    model = build(tmp_path, "gebc/tiny", path, "gebc", "{video_qformer: branches.0.stages.0, "
                                                        "projector: branches.0.stages.1}")
    from_file(model, ["branches.0.stages.0", "branches.0.stages.1"], path, "gebc")
