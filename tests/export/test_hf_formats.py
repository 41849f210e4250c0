"""``vlmkit export --format hf-llm | hf-llava`` (issue 19 item 6): transformers loads the folders in a separate
``python -I`` process outside the repository with vlmkit unimportable, and computes vlmkit's logits."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.export.conftest import trained_from_preset
from vlmkit.errors import ConfigError
from vlmkit.export.command import export_trained

ATOL = 1e-5  # float32, LoRA merged: measured 2.4e-7 (LlavaNextVideo) and 3.7e-7 (Llava)
SCRIPT = Path(__file__).with_name("hf_llava_script.py")
QUESTION = "what colour is the shape"
POOL_THEN_PROJECT = "model.branches.0.stages=[{name: adaptive_avg_3d, pooling_shape: [4, 2, 2]}, " \
                    "{name: mlp_gelu, depth: 2}]"
PROJECT_ONLY = "model.branches.0.stages=[{name: mlp_gelu, depth: 2}]"


def run_isolated(code_or_script, *args, cwd):
    """``python -I`` (no cwd, PYTHONPATH or user site on sys.path) from ``cwd``, outside the repository."""
    command = [sys.executable, "-I", *(["-c", code_or_script] if "\n" in code_or_script else [code_or_script]),
               *map(str, args)]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def vlmkit_reference(model, frames):
    """vlmkit's generation prompt for QUESTION about ``frames`` (1, T, 3, H, W uint8) and its logits."""
    contract = model.data_contract()
    encoded = contract.encode([{"role": "user", "content": "<video>\n" + QUESTION}], num_media=1,
                              add_generation_prompt=True)
    ids = torch.tensor([encoded.input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=[frames]).logits
    return ids, logits


@pytest.mark.parametrize("overrides,cls", [
    ((POOL_THEN_PROJECT,), "LlavaNextVideoForConditionalGeneration"),  # PLLaVA with its pooling before the projector
    pytest.param((PROJECT_ONLY,), "LlavaForConditionalGeneration", marks=pytest.mark.slow),  # frames as images
])
def test_a_llava_family_recipe_loads_in_plain_transformers_with_vlmkits_logits(tmp_path, overrides, cls):
    trained = trained_from_preset(tmp_path, "pllava/tiny", *overrides)  # LoRA at eval_alpha 0.25 merged
    frames = torch.randint(0, 256, (1, 4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ids, logits = vlmkit_reference(trained.model, frames)
    out = tmp_path / "hf"
    info = export_trained(trained, out, fmt="hf-llava")
    assert info["written"]["class"] == cls and json.loads((out / "config.json").read_text())["architectures"] == [cls]
    np.save(tmp_path / "frames.npy", frames[0].permute(0, 2, 3, 1).numpy())
    run_isolated(str(SCRIPT), out, tmp_path / "frames.npy", QUESTION, tmp_path / "hf.pt", cwd=tmp_path)
    theirs = torch.load(tmp_path / "hf.pt")
    assert theirs["input_ids"].tolist() == ids.tolist()  # processor + chat template = vlmkit's prompt
    torch.testing.assert_close(theirs["logits"], logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("preset,reason", [
    ("pllava/tiny", r"stage 1 \(AdaptiveAvgPool3dVideo\) pools after the projector; LlavaNextVideo pools before its "
                    r"projector .* LlavaOnevision pools after it but appends a learned image_newline token"),
    ("tiny/pooling", "pools after the projector"),
    ("videogpt_plus/tiny", "2 visual branches and LLaVA classes one vision tower"),
    ("video_llama/tiny", "the vision tower is EVAViT"),
])
def test_recipes_no_llava_class_computes_are_refused_with_the_reason(tmp_path, preset, reason):
    trained = trained_from_preset(tmp_path, preset)
    with pytest.raises(ConfigError, match=reason):
        export_trained(trained, tmp_path / "hf", fmt="hf-llava")
    assert not (tmp_path / "hf").exists()


def test_a_time_pooling_is_refused_not_approximated(tmp_path):
    trained = trained_from_preset(tmp_path, "pllava/tiny", "model.branches.0.stages=[{name: adaptive_avg_3d, "
                                  "pooling_shape: [2, 2, 2]}, {name: mlp_gelu, depth: 2}]")
    with pytest.raises(ConfigError, match="stage 0 .* is not a per-frame average pooling"):
        export_trained(trained, tmp_path / "hf", fmt="hf-llava")


HF_LLM = """
import importlib.abc, sys
class NoVlmkit(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'vlmkit':
            raise ImportError(name)
sys.meta_path.insert(0, NoVlmkit())
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, out = sys.argv[1:3]
tokenizer = AutoTokenizer.from_pretrained(folder)
ids = tokenizer(["what colour is the shape", "which way does it move"], return_tensors="pt", padding=True)
model = AutoModelForCausalLM.from_pretrained(folder).eval()
with torch.no_grad():
    logits = model(**ids).logits
torch.save({"ids": ids, "logits": logits}, out)
"""


def test_the_merged_llm_alone_loads_with_auto_model_for_causal_lm(tmp_path):
    trained = trained_from_preset(tmp_path, "pllava/tiny")  # LoRA on q/v, eval alpha
    llm = trained.model.llm
    ids = llm.tokenizer(["what colour is the shape", "which way does it move"], return_tensors="pt", padding=True)
    with torch.no_grad():  # the wrapper as VideoLLM calls it in evaluation, LoRA not merged yet
        ours = llm(inputs_embeds=llm.embed(ids["input_ids"]), attention_mask=ids["attention_mask"]).logits
    export_trained(trained, tmp_path / "llm", fmt="hf-llm")
    run_isolated(HF_LLM, tmp_path / "llm", tmp_path / "llm.pt", cwd=tmp_path)
    theirs = torch.load(tmp_path / "llm.pt", weights_only=False)
    assert theirs["ids"]["input_ids"].tolist() == ids["input_ids"].tolist()
    torch.testing.assert_close(theirs["logits"], ours, atol=ATOL, rtol=0)


def test_video_xl_compressing_llm_is_refused_for_hf_llm(tmp_path):
    trained = trained_from_preset(tmp_path, "video_xl/tiny")
    with pytest.raises(ConfigError, match="beacon_qwen2.*summary tokens"):
        export_trained(trained, tmp_path / "llm", fmt="hf-llm")
