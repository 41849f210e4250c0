"""Video-LLaMA presets: full size on the meta device with published sizes, tiny for real (train + generate)."""
from __future__ import annotations

import pytest
import torch

from vlmkit.assemble import build_model
from vlmkit.config import load_config
from vlmkit.models.prompting import IGNORE_INDEX, collate_encoded
from vlmkit.registry import MODELS


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_meta(tmp_path, preset):
    """The full-size preset as shipped, without weights: LLM from its config, a small offline tokenizer."""
    path = tmp_path / "exp.yaml"
    path.write_text(f"model: {{preset: {preset}}}\n")
    cfg = load_config(path, ["model.llm.pretrained=null", "model.llm.tokenizer=local:word", "~model.init_weights"])
    with torch.device("meta"):
        return MODELS.build(cfg.model, path="model")


def bert_layer(hidden=768, ffn=3072, cross_width=None):
    """Parameters of one query-only Q-Former layer (self-attention, optional cross-attention, query FFN)."""
    attn = 3 * (hidden * hidden + hidden) + (hidden * hidden + hidden) + 2 * hidden
    cross = 0 if cross_width is None else (hidden * hidden + hidden) + 2 * (cross_width * hidden + hidden) + \
        (hidden * hidden + hidden) + 2 * hidden
    return attn + cross + (hidden * ffn + ffn) + (ffn * hidden + hidden) + 2 * hidden


# Published totals (model cards / papers); components within 1-2 %.
LLMS = {"video_llama/vicuna7b": (6.74e9, 4096), "video_llama/vicuna13b": (13.02e9, 5120),
        "video_llama/llama2_7b_chat": (6.74e9, 4096)}


@pytest.mark.parametrize("preset", sorted(LLMS))
def test_full_size_preset_on_meta_has_published_component_sizes(tmp_path, preset):
    model = build_meta(tmp_path, preset)
    llm_size, hidden = LLMS[preset]
    branch = model.branches[0]
    encoder, qformer, video_qformer, proj = branch.encoder, *branch.stages
    assert next(model.parameters()).device.type == "meta"
    assert count(model.llm) == pytest.approx(llm_size, rel=0.01)
    # EVA ViT-g/14 as BLIP-2 uses it (39 of 40 blocks): about 1.0e9 (BLIP-2 paper: "ViT-g, 1B")
    assert count(encoder) == pytest.approx(0.986e9, rel=0.01)
    # BLIP-2 Q-Former without its text-only parts (word embeddings, text FFNs): 12 layers, 6 with
    # cross-attention to 1408-wide EVA tokens, 32 queries, embedding LayerNorm -> about 105M.
    expected_qformer = 6 * bert_layer(cross_width=1408) + 6 * bert_layer() + 32 * 768 + 2 * 768
    assert count(qformer) == expected_qformer == pytest.approx(105e6, rel=0.01)
    # Video Q-Former: 2 layers with cross-attention in each + 32 queries + 32 frame positions.
    assert count(video_qformer) == 2 * bert_layer(cross_width=768) + 2 * 32 * 768 + 2 * 768
    assert count(proj) == 768 * hidden + hidden  # llama_proj
    assert model.visual_tokens == 32 and model.num_frames == 8
    # Only the video adapter trains (frozen LLM, EVA and BLIP-2 Q-Former).
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == count(video_qformer) + count(proj)


def test_llama2_variant_uses_video_llamas_llama2_prompt(tmp_path):
    model = build_meta(tmp_path, "video_llama/llama2_7b_chat")
    text = model.template.render([{"from": "human", "value": "Describe it."}], add_generation_prompt=True).text
    assert text == "[INST] <<SYS>>\n \n<</SYS>>\n\nDescribe it. [/INST]"


# ---------------------------------------------------------------------------------------------- tiny
def tiny(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("model: {preset: video_llama/tiny}\n")
    torch.manual_seed(0)
    return build_model(load_config(path))


def batch_for(model, questions, answers=None):
    contract = model.data_contract()
    generation = answers is None
    samples = [contract.encode([{"from": "human", "value": f"<video>\n{q}"}]
                               + ([] if generation else [{"from": "gpt", "value": answers[i]}]),
                               num_media=1, add_generation_prompt=generation)
               for i, q in enumerate(questions)]
    batch = collate_encoded(samples, contract.pad_token_id, side="left" if generation else "right")
    size = contract.preprocessing[0].size
    batch["pixel_values"] = [torch.rand(len(questions), contract.num_frames, 3, size, size)]
    return batch


def test_tiny_video_llama_trains_only_the_video_adapter(tmp_path):
    model = tiny(tmp_path)
    assert model.visual_tokens == 4 and model.data_contract().num_frames == 4
    batch = batch_for(model, ["what colour is the shape", "which way"], ["red", "it moves left"])
    visual = batch["input_ids"] == model.visual_token_id
    assert visual.sum(dim=1).tolist() == [4, 4] and (batch["labels"][visual] == IGNORE_INDEX).all()
    model.train()
    model(**batch).loss.backward()
    encoder, qformer, video_qformer, proj = model.branches[0].encoder, *model.branches[0].stages
    for frozen in (encoder, qformer, model.llm):
        assert all(p.grad is None for p in frozen.parameters()), type(frozen).__name__
    assert not qformer.training and not encoder.training  # frozen stages stay in eval mode (no dropout)
    for trained in (video_qformer.query_tokens, video_qformer.frame_position_embedding.weight, proj.proj.weight):
        assert trained.grad is not None and trained.grad.abs().sum() > 0


def test_tiny_video_llama_loss_falls_and_batched_generation_matches_single(tmp_path):
    model = tiny(tmp_path)
    batch = batch_for(model, ["what colour is the shape", "which way"], ["red", "it moves left"])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(6):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    model.eval()
    questions = ["what colour is the shape", "which way does it move now"]
    gen = batch_for(model, questions)
    both = model.generate(**gen, max_new_tokens=4, do_sample=False)
    # each row of the left-padded batch generates what it generates alone
    for i in range(2):
        alone = {"input_ids": gen["input_ids"][i:i + 1], "attention_mask": gen["attention_mask"][i:i + 1],
                 "pixel_values": [gen["pixel_values"][0][i:i + 1]]}
        trimmed = alone["attention_mask"][0].bool()
        alone = {"input_ids": alone["input_ids"][:, trimmed], "attention_mask": alone["attention_mask"][:, trimmed],
                 "pixel_values": alone["pixel_values"]}
        assert model.generate(**alone, max_new_tokens=4, do_sample=False) == [both[i]]


def test_tiny_video_llama_refuses_more_frames_than_frame_positions(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("model: {preset: video_llama/tiny}\n")
    with pytest.raises(ValueError, match="max_frame_pos=8"):
        build_model(load_config(path, ["model.sampling.sampler.num_frames=12"]))
