"""VideoGPT+ recipe: two branches (image first), token totals per pool level, tiny training, sweeps, meta builds."""
import csv
import textwrap

import pytest
import torch

from tests.models.recipe_helpers import batch_for, build_preset, count, train_steps
from tests.toy_video_data import ToyColourVideos
from vlmkit.cli import main as cli_main
from vlmkit.registry import DATASETS

LEVELS = "model.branches.0.stages.1.pool_level,model.branches.1.stages.1.pool_level=1,2,4,8,16"


def read_rows(out):
    with (out / "sweep.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_tiny_videogpt_plus_orders_image_branch_first_trains_and_generates(tmp_path):
    model = build_preset(tmp_path, "videogpt_plus/tiny")
    contract = model.data_contract()
    assert model.visual_tokens == 64 and contract.num_frames == 8
    image_prep, video_prep = contract.preprocessing
    assert (image_prep.size, video_prep.size) == (32, 16)
    assert image_prep.mean == (0.48145466, 0.4578275, 0.40821073) and video_prep.mean == (0.485, 0.456, 0.406)
    batch = batch_for(model, ["what colour is it", "where does it go"], ["blue", "up"])
    with torch.no_grad():
        tokens = model.encode_video(batch["pixel_values"])
        torch.testing.assert_close(tokens[:, :32], model.branches[0](batch["pixel_values"][0]))
        torch.testing.assert_close(tokens[:, 32:], model.branches[1](batch["pixel_values"][1]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(".lora_" in n or ".stages.0." in n for n in trainable)
    for proj in ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"):  # every linear layer of Phi-3
        assert any(f"{proj}.lora_A" in n for n in trainable), proj
    assert not any("lm_head.lora" in n for n in trainable)
    losses = train_steps(model, batch, steps=6)
    assert losses[-1] < losses[0] * 0.9, losses
    model.eval()
    answers = model.generate(**batch_for(model, ["what colour is it"], generation=True), max_new_tokens=3,
                             do_sample=False)
    assert len(answers) == 1 and isinstance(answers[0], str)


@pytest.mark.parametrize("preset,llm_params,hidden", [
    ("phi3_mini", 3.82e9, 3072), ("qwen2_5_1_5b", 1.54e9, 1536), ("qwen2_5_3b", 3.09e9, 2048)])
def test_full_size_presets_build_on_meta(tmp_path, preset, llm_params, hidden):
    model = build_preset(tmp_path, f"videogpt_plus/{preset}", "model.llm.pretrained=null",
                         "model.llm.tokenizer=local:word", meta=True)
    assert model.visual_tokens == 3328 and model.num_frames == 16
    vision = 0.3035e9 + 1.0126e9  # CLIP ViT-L/14-336 + InternVideo2-1B
    projectors = (1024 + 1408) * hidden + 2 * (hidden * hidden) + 4 * hidden
    assert count(model) - count(model, trainable=True) == pytest.approx(llm_params + vision, rel=0.01)
    lora_and_proj = count(model, trainable=True)
    assert lora_and_proj > projectors and model.llm.lora_alpha == 256.0


def test_sweep_reproduces_the_pool_level_token_column_on_meta(tmp_path):
    """Full-size vision side (CLIP-L/14-336 + InternVideo2-1B, 16 frames) with a tiny LLM, built on meta."""
    cfg = tmp_path / "train.yaml"
    cfg.write_text(textwrap.dedent("""
        model: {preset: videogpt_plus/phi3_mini}
        datasets:
          train: {name: llava_instruct, ann_path: unused.json}
        run: {name: trainer, max_steps: 1, scheduler: {name: constant, init_lr: 0.001}}
    """))
    out = tmp_path / "levels"
    assert cli_main(["sweep", "--cfg-path", str(cfg), "--out", str(out), "--build-only", "--meta",
                     "model.llm.preset=llms/tiny_phi3", "model.max_length=16384",
                     # shapes only: the towers' weight files ($VLMKIT_WEIGHTS) are not read
                     "model.branches.0.encoder.pretrained=null", "model.branches.1.encoder.pretrained=null",
                     "--grid", LEVELS]) == 0
    rows = read_rows(out)
    assert [(r["pool_level"], int(r["visual_tokens"])) for r in rows] == [
        ("1", 13312), ("2", 3328), ("4", 832), ("8", 208), ("16", 80)]
    assert "| pool_level | visual_tokens |" in (out / "sweep.md").read_text()


def test_tiny_pool_level_sweep_trains_two_points(isolated, tmp_path):
    DATASETS.add("toy_colour_videos", ToyColourVideos)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(textwrap.dedent("""
        model: {preset: videogpt_plus/tiny}
        datasets:
          train: {name: toy_colour_videos, size: 4}
        run:
          name: trainer
          max_steps: 2
          batch_size: 2
          strategy: single
          loggers: [jsonl]
          optimizer: {name: adamw, lr_scale: {branches.0.stages.0: 0.1, branches.1.stages.0: 0.1}}
          scheduler: {name: constant, init_lr: 0.001}
    """))
    out = tmp_path / "sweep"
    assert cli_main(["sweep", "--cfg-path", str(cfg), "--out", str(out), "--grid",
                     "model.branches.0.stages.1.pool_level,model.branches.1.stages.1.pool_level=1,2"]) == 0
    rows = read_rows(out)
    # 8 frames of 4x4 grids in each branch: p=1 keeps 16 per frame, p=2 pools to 4
    assert [(r["pool_level"], int(r["visual_tokens"])) for r in rows] == [("1", 256), ("2", 64)]
    assert all(float(r["final_train_loss"]) > 0 and r["steps"] == "2" for r in rows)
