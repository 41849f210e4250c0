"""LLMVA-GEBC presets: 38 visual tokens at full size (from the config alone), tiny model for real."""
from __future__ import annotations

import pytest
import torch

from vlmkit.assemble import build_model
from vlmkit.config import load_config
from vlmkit.models.encoders.precomputed_features import nearest_indices, nearest_resize
from vlmkit.models.prompting import IGNORE_INDEX, collate_encoded
from vlmkit.registry import MODELS

PROMPT = "This video describes the change of action.The subject is"


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_meta(tmp_path, preset):
    path = tmp_path / "exp.yaml"
    path.write_text(f"model: {{preset: {preset}}}\n")
    cfg = load_config(path, ["model.llm.pretrained=null", "model.llm.tokenizer=local:word"])
    with torch.device("meta"):
        return MODELS.build(cfg.model, path="model")


def test_full_size_gebc_has_38_visual_tokens_and_published_sizes(tmp_path):
    model = build_meta(tmp_path, "gebc/opt13b")
    assert model.branch_tokens == [32, 6] and model.visual_tokens == 38  # counted from the config, no forward
    assert model.num_frames == 12 and model.data_contract().preprocessing == ()  # features, not pixels
    assert set(model.batch_keys) == {"q_former_tokens", "intern_video", "omni", "clip", "reference_points"}
    assert count(model.llm) == pytest.approx(12.85e9, rel=0.01)  # OPT-13B
    video, other = model.branches
    assert other.encoder.out_dim == 3072 and other.tokens(12) == 6
    # one opt_proj (768 -> 5120) serves both branches
    assert other.stages[2] is video.stages[1]
    assert count(video.stages[1]) == 768 * 5120 + 5120
    assert count(other.stages[0]) == 3072 * 768 + 768  # other_feat_linear
    assert other.stages[1].frame_position_embedding.weight.shape == (128, 768)  # max_other_features_pos
    # all of the adapter trains, the LLM is frozen
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == count(model) - count(model.llm)
    # LLM input: [BOS] "Video:" <38 visual tokens> prompt caption </s>
    encoded = model.data_contract().encode([{"from": "human", "value": f"<video>{PROMPT}"},
                                            {"from": "gpt", "value": "a man"}])
    assert encoded.rendered.text == "Video:" + "<|visual|>" * 38 + PROMPT + "a man</s>"
    assert encoded.input_ids[0] == model.llm.tokenizer.bos_token_id
    assert encoded.input_ids.count(model.visual_token_id) == 38


def test_llama_variant_has_the_video_branch_only(tmp_path):
    model = build_meta(tmp_path, "gebc/llama7b")
    assert model.visual_tokens == 32 and count(model.llm) == pytest.approx(6.74e9, rel=0.01)
    assert model.llm.base_config.max_position_embeddings == 2048


def test_nearest_resize_keeps_the_ends_and_breaks_ties_downwards():
    assert nearest_indices(5, 3).tolist() == [0, 2, 4]
    assert nearest_indices(4, 3).tolist() == [0, 1, 3]  # 1.5 -> 1 (scipy interp1d 'nearest' rounds half down)
    assert nearest_indices(2, 5).tolist() == [0, 0, 0, 1, 1]
    assert nearest_indices(1, 3).tolist() == [0, 0, 0]
    seq = torch.arange(10.0)[:, None]
    assert nearest_resize(seq, 4)[:, 0].tolist() == [0.0, 3.0, 6.0, 9.0]


# ---------------------------------------------------------------------------------------------- tiny
def tiny(tmp_path, *overrides):
    path = tmp_path / "exp.yaml"
    path.write_text("model: {preset: gebc/tiny}\n")
    torch.manual_seed(0)
    return build_model(load_config(path, list(overrides)))


def features(batch_size, frames=4, lengths=(5, 11)):
    """q_former_tokens as one tensor; the other features as per-sample lists of different lengths."""
    return {"q_former_tokens": torch.randn(batch_size, frames, 4, 32),
            "intern_video": [torch.randn(lengths[i % len(lengths)], 8) for i in range(batch_size)],
            "omni": [torch.randn(lengths[i % len(lengths)] + 1, 16) for i in range(batch_size)],
            "clip": torch.randn(batch_size, 7, 8),
            "reference_points": torch.rand(batch_size, 2)}


def batch_for(model, captions=None, size=2):
    contract = model.data_contract()
    generation = captions is None
    conv = [{"from": "human", "value": f"<video>{PROMPT}"}]
    samples = [contract.encode(conv + ([] if generation else [{"from": "gpt", "value": captions[i]}]),
                               num_media=1, add_generation_prompt=generation) for i in range(size)]
    batch = collate_encoded(samples, contract.pad_token_id, side="left" if generation else "right")
    return {**batch, **features(size), "meta": [{"id": str(i)} for i in range(size)]}


def test_tiny_gebc_trains_the_adapter_and_not_the_llm(tmp_path):
    model = tiny(tmp_path)
    assert model.visual_tokens == 6 and model.data_contract().extra["batch_keys"]
    batch = batch_for(model, ["a man in a red shirt", "a dog"])
    visual = batch["input_ids"] == model.visual_token_id
    assert visual.sum(dim=1).tolist() == [6, 6] and (batch["labels"][visual] == IGNORE_INDEX).all()
    assert model.encode_video(inputs=batch).shape == (2, 6, model.llm.hidden_size)
    model.train()
    model(**batch).loss.backward()
    assert all(p.grad is None for p in model.llm.parameters())
    video_q, proj = model.branches[0].stages
    feat_proj, other_q, shared = model.branches[1].stages
    assert shared is proj
    for trained in (video_q.boundary.proj.weight, video_q.query_tokens, other_q.boundary.norm.weight,
                    other_q.frame_position_embedding.weight, feat_proj.proj.weight, proj.proj.weight):
        assert trained.grad is not None and trained.grad.abs().sum() > 0
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(5):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_tiny_gebc_boundary_changes_the_visual_tokens_and_batched_generate_runs(tmp_path):
    model = tiny(tmp_path).eval()
    batch = batch_for(model)
    before = model.encode_video(inputs=batch)
    moved = {**batch, "reference_points": batch["reference_points"].flip(0) + 0.3}
    assert not torch.allclose(before, model.encode_video(inputs=moved))
    captions = model.generate(**batch, max_new_tokens=3, do_sample=False, num_beams=2)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)


def test_missing_feature_or_wrong_frame_count_is_a_clear_error(tmp_path):
    model = tiny(tmp_path)
    batch = batch_for(model, ["a man", "a dog"])
    without = {k: v for k, v in batch.items() if k != "reference_points"}
    with pytest.raises(ValueError, match=r"reads batch entries \['reference_points'\].*missing"):
        model(**without)
    wrong = {**batch, "q_former_tokens": torch.randn(2, 3, 4, 32)}  # 3 frames, the sampling says 4
    with pytest.raises(ValueError, match=r"gave \(T, N\)=\(3, 4\) per sample but the model was built for "
                                         r"\(T, N\)=\(4, 4\)"):
        model(**wrong)
    bad_width = {**batch, "omni": torch.randn(2, 5, 15)}
    with pytest.raises(ValueError, match=r"'omni' of sample 0 has shape \(5, 1, 15\)"):
        model(**bad_width)


def test_shared_modules_must_name_identical_modules(tmp_path):
    with pytest.raises(ValueError, match="differ in type or parameter shapes"):
        tiny(tmp_path, "model.shared_modules={branches.1.stages.2: branches.0.stages.0}")
