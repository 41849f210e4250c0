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
def test_tiny_recipes_count_tokens_and_train(tmp_path, preset, tokens):
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


def greedy_by_hand(model, batch, row, steps):
    """Row ``row`` decoded by argmax over the full forward's last logits, one token at a time: no KV cache, no
    ``generate``, the row's padding removed."""
    keep = batch["attention_mask"][row].bool()
    ids = batch["input_ids"][row, keep][None]
    pixels = [p[row:row + 1] for p in batch["pixel_values"]]
    new = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels).logits
            token = int(logits[0, -1].argmax())
            assert token != model.visual_token_id  # it would be read as a visual placeholder when fed back
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return new


def generate_ids(model, batch, monkeypatch, **kwargs):
    """The answers of ``model.generate`` and the new token ids it decoded them from."""
    tokenizer = model.llm.tokenizer
    seen = []
    decode = tokenizer.batch_decode

    def recording_decode(ids, **options):
        seen.append(ids.tolist())
        return decode(ids, **options)

    monkeypatch.setattr(tokenizer, "batch_decode", recording_decode)
    answers = model.generate(**batch, do_sample=False, **kwargs)
    (ids,) = seen
    return answers, ids


@pytest.mark.parametrize("preset", ["tiny/pooling", "video_llama/tiny"])
def test_generation_is_the_greedy_decode_and_stops_at_eos_and_stop_strings(tmp_path, monkeypatch, preset):
    model = tiny(tmp_path, preset).eval()
    # two prompts of different lengths: left padding, as the evaluator batches them
    batch = batch_for(model, ["what colour is the shape", "which way does the red ball move after it turns"],
                      generation=True)
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()
    steps = 4
    by_hand = [greedy_by_hand(model, batch, row, steps) for row in range(2)]
    tokenizer, pad = model.llm.tokenizer, model.llm.tokenizer.pad_token_id
    assert tokenizer.eos_token_id not in by_hand[0] + by_hand[1]  # so both rows run to max_new_tokens
    answers, ids = generate_ids(model, batch, monkeypatch, max_new_tokens=steps)
    assert ids == by_hand
    assert answers == [tokenizer.decode(row, skip_special_tokens=True).strip() for row in by_hand]

    # A token row 0 emits at step k, declared the end of sequence: row 0 ends with it, padded after; row 1 runs on.
    k = next(i for i in range(1, steps) if by_hand[0][i] not in by_hand[0][:i] + by_hand[1])
    eos = by_hand[0][k]
    monkeypatch.undo()
    answers, ids = generate_ids(model, batch, monkeypatch, max_new_tokens=steps, eos_token_id=eos)
    assert ids == [by_hand[0][:k + 1] + [pad] * (steps - k - 1), by_hand[1]]

    # The template's stop strings cut the decoded text: stop at the word row 1 generates at step 2.
    word = tokenizer.decode(by_hand[1][2:3]).strip()
    monkeypatch.undo()
    monkeypatch.setattr(model.template, "stop_strings", (word,))
    answers, _ = generate_ids(model, batch, monkeypatch, max_new_tokens=steps)
    full = tokenizer.decode(by_hand[1], skip_special_tokens=True)
    assert answers[1] == full[:full.index(word)].strip() and len(answers[1]) < len(full.strip())
