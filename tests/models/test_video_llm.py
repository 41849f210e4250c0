import textwrap

import pytest
import torch

from vlmkit.assemble import build_model
from vlmkit.config import load_config
from vlmkit.errors import ConfigError
from vlmkit.models.prompting import IGNORE_INDEX, collate_encoded


def tiny(tmp_path, preset, *overrides):
    path = tmp_path / "exp.yaml"
    path.write_text(f"model: {{preset: {preset}}}\n")
    torch.manual_seed(0)
    return build_model(load_config(path, list(overrides)))


def batch_for(model, questions, answers=None, generation=False):
    contract = model.data_contract()
    samples = []
    for i, q in enumerate(questions):
        conv = [{"from": "human", "value": f"<video>\n{q}"}]
        if not generation:
            conv.append({"from": "gpt", "value": answers[i]})
        samples.append(contract.encode(conv, num_media=1, add_generation_prompt=generation))
    batch = collate_encoded(samples, contract.pad_token_id, side="left" if generation else "right")
    size = contract.preprocessing[0].size
    batch["pixel_values"] = [torch.rand(len(questions), contract.num_frames, 3, size, size)]
    return batch


@pytest.mark.parametrize("preset,tokens", [("tiny/pooling", 16), ("video_llama/tiny", 4)])
def test_tiny_recipes_count_tokens_train_and_generate(tmp_path, preset, tokens):
    model = tiny(tmp_path, preset, "model.llm.freeze=false")  # a trainable LM, so a few steps show learning
    contract = model.data_contract()
    assert contract.visual_tokens == tokens and contract.num_frames == 4
    batch = batch_for(model, ["what colour is the shape", "which way does it move"], ["red", "left"])
    # the placeholder became exactly `tokens` visual tokens per sample, none of them supervised
    visual = batch["input_ids"] == model.visual_token_id
    assert visual.sum(dim=1).tolist() == [tokens, tokens]
    assert (batch["labels"][visual] == IGNORE_INDEX).all()
    # the real forward produces exactly the number of tokens the contract announced
    assert model.encode_video(batch["pixel_values"]).shape == (2, tokens, model.llm.hidden_size)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    losses = []
    for _ in range(8):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.7, losses
    answers = model.generate(**batch_for(model, ["what colour is the shape"], generation=True), max_new_tokens=3,
                             do_sample=False)
    assert len(answers) == 1 and isinstance(answers[0], str)


def test_visual_gradients_reach_the_projector_and_frozen_encoder_gets_none(tmp_path):
    model = tiny(tmp_path, "video_llama/tiny")
    batch = batch_for(model, ["what is it"], ["a circle"])
    model(**batch).loss.backward()
    branch = model.branches[0]
    assert all(p.grad is None for p in branch.encoder.parameters())
    assert branch.stages[-1].proj.weight.grad is not None if hasattr(branch.stages[-1], "proj") else any(
        p.grad is not None for p in branch.stages[-1].parameters())


def test_wrong_frame_count_and_width_mismatch_are_clear_errors(tmp_path):
    model = tiny(tmp_path, "tiny/pooling")
    batch = batch_for(model, ["q"], ["a"])
    batch["pixel_values"] = [batch["pixel_values"][0][:, :3]]
    with pytest.raises(ValueError, match=r"expects pixels \(B, T=4"):
        model(**batch)
    with pytest.raises(ValueError, match="ends at width 32 but the LLM's hidden size is 64"):
        tiny(tmp_path, "tiny/pooling", "model.branches.0.stages=[{name: adaptive_avg_3d, pooling_shape: [4,2,2]}]")


def test_typo_in_nested_stage_is_caught_by_validation(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("model: {preset: tiny/pooling}\n")
    with pytest.raises(ConfigError, match=r"model.branches\[0\].stages\[1\].pooling_shap: unknown key"):
        load_config(path, ["model.branches.0.stages.1.pooling_shap=[1,1,1]"])
    with pytest.raises(ConfigError, match=r"model.branches\[0\].stages\[0\].name: unknown stage 'mlp_gleu'"):
        load_config(path, ["model.branches.0.stages.0.name=mlp_gleu"])


def test_frames_come_from_the_sampling_setting(tmp_path):
    model = tiny(tmp_path, "tiny/pooling", "model.sampling.sampler.num_frames=8",
                 "model.branches.0.stages.1.pooling_shape=[8,2,2]")
    assert model.data_contract().num_frames == 8 and model.visual_tokens == 32


def test_instruct_qformer_needs_its_own_tokenizer_within_its_vocabulary(tmp_path):
    stage = ("model.branches.0.stages=[{name: instruct_qformer, num_query: 2, num_layers: 1, "
             "config: {hidden_size: 32, num_attention_heads: 4, intermediate_size: 64, vocab_size: 50}%s}, "
             "{name: linear}]")
    with pytest.raises(ValueError, match=r"stages\[0\] reads the instruction text.*set its tokenizer"):
        tiny(tmp_path, "video_llama/tiny", stage % "")
    with pytest.raises(ValueError, match=r"tokens but the Q-Former's vocabulary is 50"):
        tiny(tmp_path, "video_llama/tiny", stage % ", tokenizer: 'local:word'")


def test_branches_with_different_input_sizes_each_get_their_own_processor(tmp_path):
    model = tiny(tmp_path, "videogpt_plus/tiny")
    contract = model.data_contract()
    sizes = [prep.size for prep in contract.preprocessing]
    assert len(set(sizes)) == 2  # CLIP-like image branch and the chunked video branch
    for prep in contract.preprocessing:
        frames = torch.randint(0, 255, (contract.num_frames, 3, 40, 48), dtype=torch.uint8)
        assert contract.sampling.processor(prep, train=False)(frames).shape[-1] == prep.size
    with pytest.raises(ValueError, match="take different input sizes"):
        tiny(tmp_path, "videogpt_plus/tiny", f"model.sampling.image_size={sizes[0]}")
