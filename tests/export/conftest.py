"""Tiny trained models to export: built from a preset (no training: their random weights stand for trained
ones) with visible LoRA updates, and inputs for any recipe (pixels, or GEBC's features)."""
import pytest
import torch

from vlmkit.assemble import TrainedModel, build_model
from vlmkit.config import load_config, to_dict
from vlmkit.runners.rng import seed_everything

# every tiny preset of a published recipe, and the PLLaVA-shaped test recipe
PRESETS = ["tiny/pooling", "pllava/tiny", "video_llama/tiny", "gebc/tiny", "videogpt_plus/tiny",
           "videotgb/tiny_llama", "videotgb/tiny_t5", "video_xl/tiny"]


def randomise_lora(model):
    """peft starts every lora_B at zero (no update): give them values so that merging changes the weights."""
    generator = torch.Generator().manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            with torch.no_grad():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


def trained_from_preset(folder, preset, *overrides, seed=0):
    """A TrainedModel as build_trained_model returns it, for ``preset`` (with config ``overrides``)."""
    path = folder / "exp.yaml"
    path.write_text(f"model: {{preset: {preset}}}\n")
    cfg = load_config(path, list(overrides))
    seed_everything(seed)
    model = build_model(cfg)
    randomise_lora(model)
    return TrainedModel(model.eval(), {"model": to_dict(cfg.model)}, None, {}, seed)


def gebc_features(size):
    generator = torch.Generator().manual_seed(3)
    return {"q_former_tokens": torch.randn(size, 4, 4, 32, generator=generator),
            "intern_video": [torch.randn(5 + i, 8, generator=generator) for i in range(size)],
            "omni": [torch.randn(6 + i, 16, generator=generator) for i in range(size)],
            "clip": torch.randn(size, 7, 8, generator=generator),
            "reference_points": torch.rand(size, 2, generator=generator)}


def inputs_for(model, generation):
    """A two-sample batch for ``model``: teacher-forced with answers, or a generation prompt."""
    from tests.models.recipe_helpers import batch_for

    torch.manual_seed(5)
    questions, answers = ["what colour is the shape", "which way does it move"], ["red", "left"]
    batch = batch_for(model, questions, None if generation else answers, generation=generation)
    if "q_former_tokens" in model.batch_keys:
        batch.update(gebc_features(2))
    if model.selector is not None:  # VideoTGB's sampler reads the question with its own tokenizer
        encoded = model.selector.tokenizer(questions, padding=True, return_tensors="pt")
        batch["question_ids"], batch["question_mask"] = encoded["input_ids"], encoded["attention_mask"]
    return batch


def outputs_of(model, max_new_tokens=6):
    """(logits of a teacher-forced batch, greedy answers to a generation batch)."""
    model.eval()
    with torch.no_grad():
        logits = model(**inputs_for(model, generation=False)).logits
        answers = model.generate(**inputs_for(model, generation=True), max_new_tokens=max_new_tokens,
                                 do_sample=False, num_beams=1)
    return logits, answers


@pytest.fixture
def preset_model(tmp_path):
    return lambda preset, *overrides: trained_from_preset(tmp_path, preset, *overrides)
