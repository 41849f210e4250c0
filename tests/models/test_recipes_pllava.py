"""PLLaVA recipe: token counts, 3D pooling, tiny training and generation, eval-time LoRA alpha, key maps, meta."""
import pytest
import torch
from transformers import LlavaNextForConditionalGeneration

from tests.models.recipe_helpers import batch_for, build_preset, count, train_steps
from tests.models.test_published_key_lists import LLAVA_NEXT, class_shapes, llava_next_hub_names, pllava_saved_names
from tests.models.tiny_published_checkpoints import random_tensors
from vlmkit.errors import ConfigError
from vlmkit.models.checkpoints.llava_hf import load_llava_hf
from vlmkit.models.checkpoints.pllava import load_pllava_weights
from vlmkit.models.prompting import IGNORE_INDEX
from vlmkit.registry import POOLERS


def test_16x24x24_pools_to_2304_tokens_exactly_as_adaptive_avg_pool3d():
    pool = POOLERS.build({"name": "adaptive_avg_3d", "pooling_shape": [16, 12, 12]}, in_dim=8)
    x = torch.randn(2, 16, 576, 8)
    t, n = pool.out_tokens(576, 16)
    assert t * n == 2304
    ref = torch.nn.AdaptiveAvgPool3d((16, 12, 12))(x.reshape(2, 16, 24, 24, 8).permute(0, 4, 1, 2, 3))
    torch.testing.assert_close(pool(x), ref.permute(0, 2, 3, 4, 1).reshape(2, 16, 144, 8))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_preset(tmp_path_factory.mktemp("pllava"), "pllava/tiny")


def test_tiny_pllava_trains_and_generates(tiny_model):
    model = tiny_model
    assert model.visual_tokens == 16 and model.data_contract().num_frames == 4
    batch = batch_for(model, ["what colour is the shape", "which way does it move"], ["red", "left"])
    visual = batch["input_ids"] == model.visual_token_id
    assert visual.sum(dim=1).tolist() == [16, 16] and (batch["labels"][visual] == IGNORE_INDEX).all()
    # only LoRA (q_proj, v_proj) and the projector train
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or n.startswith("branches.0.stages.0.") for n in trainable)
    assert any("q_proj.lora_A" in n for n in trainable) and not any("k_proj.lora" in n for n in trainable)
    losses = train_steps(model, batch, steps=8)
    assert losses[-1] < losses[0] * 0.95 and losses == sorted(losses, reverse=True), losses
    model.eval()
    answers = model.generate(**batch_for(model, ["what colour is the shape"], generation=True), max_new_tokens=3,
                             do_sample=False)
    assert len(answers) == 1 and isinstance(answers[0], str)


def test_eval_lora_alpha_scales_the_update_by_alpha_over_r(tmp_path):
    model = build_preset(tmp_path, "pllava/tiny")  # r 8, alpha 2 (train), eval_alpha 0.25
    llm = model.llm
    assert (llm.lora_alpha, llm.lora_eval_alpha) == (2.0, 0.25)
    layer = llm.model.base_model.model.model.layers[0].self_attn.q_proj
    torch.nn.init.normal_(layer.lora_B["default"].weight)  # B starts at zero: make the update visible
    x = torch.randn(3, layer.in_features)
    update = x @ layer.lora_A["default"].weight.T @ layer.lora_B["default"].weight.T
    base = layer.base_layer(x)
    model.train()
    torch.testing.assert_close(layer(x), base + (2 / 8) * update)
    model.eval()
    torch.testing.assert_close(layer(x), base + (0.25 / 8) * update)
    model.train()
    torch.testing.assert_close(layer(x), base + (2 / 8) * update)
    # the whole model's output moves with it
    for module in llm.model.modules():
        if hasattr(module, "lora_B") and "default" in module.lora_B:
            torch.nn.init.normal_(module.lora_B["default"].weight)
    batch = batch_for(model, ["what is it"], ["a cat"])
    with torch.no_grad():
        train_logits = model(**batch).logits
        model.eval()
        eval_logits = model(**batch).logits
        llm.set_lora_alpha(2.0)
        torch.testing.assert_close(model(**batch).logits, train_logits)
    assert not torch.allclose(train_logits, eval_logits)


def test_lora_alpha_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.llm\.lora\.eval_alpha: must be > 0"):  # at validation
        build_preset(tmp_path, "pllava/tiny", "model.llm.lora.eval_alpha=0")


def llava_hf_names(tmp_path, layout) -> dict[str, tuple[int, ...]]:
    """llava-hf LLaVA-NeXT names and shapes from transformers' LlavaNextForConditionalGeneration at pllava/tiny's
    sizes, never from vlmkit's key map: 'old' as the released hub files hold them (written by transformers 4.x),
    'new' the class's own names under transformers 5."""
    if layout == "old":
        return llava_next_hub_names(tmp_path)
    return class_shapes(LlavaNextForConditionalGeneration, LLAVA_NEXT)


@pytest.mark.parametrize("layout", ["old", "new"])
def test_llava_hf_checkpoint_loads_through_the_key_map(tmp_path, layout):
    model = build_preset(tmp_path, "pllava/tiny")
    state = random_tensors(llava_hf_names(tmp_path, layout))
    lm = "language_model.model." if layout == "old" else "model.language_model."
    proj = "multi_modal_projector." if layout == "old" else "model.multi_modal_projector."
    (clip_fc1,) = [k for k in state if "vision_tower" in k and k.endswith("encoder.layers.1.mlp.fc1.weight")]
    report = load_llava_hf(model, state)
    assert report.dropped == [("model." if layout == "new" else "") + "image_newline"]
    q = model.llm.model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight
    torch.testing.assert_close(q, state[f"{lm}layers.0.self_attn.q_proj.weight"])
    torch.testing.assert_close(model.branches[0].stages[0].layers[2].bias, state[proj + "linear_2.bias"])
    tower = model.branches[0].encoder.model
    torch.testing.assert_close(getattr(tower, "vision_model", tower).encoder.layers[1].mlp.fc1.weight, state[clip_fc1])
    # a missing tensor and a stray one are both errors
    broken = dict(state)
    del broken[f"{lm}layers.1.mlp.down_proj.weight"]
    with pytest.raises(ConfigError, match="does not cover 1 model tensor"):
        load_llava_hf(model, broken)
    with pytest.raises(ConfigError, match="no place in the model"):
        load_llava_hf(model, {**state, "language_model.model.layers.9.self_attn.q_proj.weight": torch.zeros(1)})


def test_pllava_lora_and_projector_weights_load(tmp_path):
    model = build_preset(tmp_path, "pllava/tiny")
    state = random_tensors(pllava_saved_names())  # PLLaVA's saved names, from peft's wrapping (see that function)
    key = "language_model.base_model.model.model.layers.1.self_attn.v_proj.lora_B.default.weight"
    assert key in state and not any("k_proj" in k for k in state)
    load_pllava_weights(model, state)
    v_proj = model.llm.model.base_model.model.model.layers[1].self_attn.v_proj
    torch.testing.assert_close(v_proj.lora_B["default"].weight, state[key])
    # peft's adapter-file spelling without '.default' maps to the same tensors
    plain = {k.replace(".default.weight", ".weight"): v for k, v in state.items()}
    load_pllava_weights(model, plain)
    with pytest.raises(ConfigError, match="does not cover"):
        load_pllava_weights(model, {k: v for k, v in state.items() if "linear_2" not in k})


# Parameters: LLM (Vicuna-7B 6.74e9 / 13B 13.0e9 / Yi-34B 34.4e9, embeddings at llava-hf's padded vocabulary)
# + CLIP ViT-L/14-336 (0.30e9) + projector + LoRA(q, v).
@pytest.mark.parametrize("size,total,lora_layers,hidden,v_out", [
    ("7b", 7.13e9, 32, 4096, 4096), ("13b", 13.43e9, 40, 5120, 5120), ("34b", 34.93e9, 60, 7168, 1024)])
def test_full_size_presets_build_on_meta(tmp_path, size, total, lora_layers, hidden, v_out):
    model = build_preset(tmp_path, f"pllava/{size}", "model.llm.tokenizer=local:word", meta=True)
    assert model.visual_tokens == 2304 and model.num_frames == 16
    assert count(model) == pytest.approx(total, rel=0.01), count(model)
    lora = lora_layers * 128 * ((hidden + hidden) + (hidden + v_out))
    projector = 1024 * hidden + hidden + hidden * hidden + hidden
    assert count(model, trainable=True) == lora + projector
