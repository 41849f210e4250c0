"""VideoTGB presets: tiny encoder-decoder and decoder-only variants train and generate; full size on meta."""
from __future__ import annotations

import pytest
import torch

from tests.models.recipe_helpers import batch_for, build_preset, count
from vlmkit.models.selectors.temporal_grounding import TemporalGroundingSampler


def with_question(model, batch, questions, spans=None):
    tokenizer = model.data_contract().extra["selector"]["question_tokenizer"]
    encoded = tokenizer(questions, padding=True, return_tensors="pt")
    batch["question_ids"], batch["question_mask"] = encoded["input_ids"], encoded["attention_mask"]
    if spans is not None:
        batch["tgb_span"] = torch.tensor(spans)
    return batch


QUESTIONS, ANSWERS, SPANS = ["what colour is the shape", "which way does it move"], ["red", "left"], \
    [[0.0, 0.4], [0.5, 1.0]]


@pytest.mark.parametrize("preset,tokens", [("videotgb/tiny_t5", 16), ("videotgb/tiny_llama", 4)])
def test_tiny_variants_train_with_the_sampler_loss_and_generate(tmp_path, preset, tokens):
    model = build_preset(tmp_path, preset)
    assert model.num_frames == 8 and model.encoded_frames == 4 and model.visual_tokens == tokens
    batch = with_question(model, batch_for(model, QUESTIONS, ANSWERS), QUESTIONS, SPANS)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    model.train()
    losses, sampler_losses = [], []
    for step in range(8):
        out = model(**batch)
        optimizer.zero_grad()
        out.loss.backward()
        if step == 0:  # the span loss reaches the sampler; the LM loss reaches the Q-Former side
            assert model.selector.encoder.span_head.weight.grad.abs().sum() > 0
            assert model.branches[0].stages[-1].proj.weight.grad.abs().sum() > 0
        optimizer.step()
        losses.append(out.loss.item())
        sampler_losses.append(out.selector_loss.item())
    assert losses[-1] < losses[0] and sampler_losses[-1] < sampler_losses[0], (losses, sampler_losses)
    model.eval()
    gen = with_question(model, batch_for(model, QUESTIONS, generation=True), QUESTIONS)
    texts = model.generate(**gen, max_new_tokens=3, do_sample=False)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_training_sampler_without_labels_is_a_clear_error(tmp_path):
    model = build_preset(tmp_path, "videotgb/tiny_llama")
    batch = with_question(model, batch_for(model, QUESTIONS, ANSWERS), QUESTIONS)
    model.train()
    with pytest.raises(ValueError, match="tgb_span"):
        model(**batch)
    model.eval()  # no labels needed to select frames at evaluation
    assert torch.isfinite(model(**batch).loss)


def test_fixed_sampler_stage_takes_frames_from_the_label_span(tmp_path):
    model = build_preset(tmp_path, "videotgb/tiny_llama", "model.selector.freeze=true",
                         "model.selector.train_frames=label_span")
    assert all(not p.requires_grad for p in model.selector.parameters())
    model.train()
    pixels = torch.rand(2, 8, 3, 32, 32)
    selection = model.selector([pixels], {"tgb_span": torch.tensor(SPANS)})
    assert selection.loss is None
    assert selection.indices.tolist() == [[0, 0, 1, 2], [3, 4, 5, 6]]


def meta_model(tmp_path, preset):
    return build_preset(tmp_path, preset, "model.llm.pretrained=null", "model.llm.tokenizer=local:word",
                        "model.selector.tokenizer=local:word", "model.selector.pretrained=null", meta=True)


def bert_layer(hidden=768, ffn=3072, cross=False):
    attention = 4 * (hidden * hidden + hidden) + 2 * hidden
    return attention * (2 if cross else 1) + hidden * ffn + ffn + ffn * hidden + hidden + 2 * hidden


@pytest.mark.parametrize("preset,tokens,hidden", [("videotgb/blip2_flant5xl", 128, 2048),
                                                 ("videotgb/instructblip_vicuna7b", 32, 4096)])
def test_full_size_presets_on_meta(tmp_path, preset, tokens, hidden):
    model = meta_model(tmp_path, preset)
    assert model.num_frames == 32 and model.encoded_frames == 4 and model.visual_tokens == tokens
    assert model.llm.hidden_size == hidden and model.branches[0].stages[-1].proj.weight.shape == (hidden, 768)
    sampler = model.selector
    assert isinstance(sampler, TemporalGroundingSampler) and len(sampler.encoder.layers) == 6  # fusion mode
    # six BERT-base layers with cross-attention + BERT word/type embeddings + the flow embedding + span head
    flow_embedding = (2 * 16 * 16 * 768 + 768) + (196 + 1) + 2 * 768 + 512 * 768 + 2 * 768
    text = 30522 * 768 + 2 * 768 + 2 * 768
    assert count(sampler) == 6 * bert_layer(cross=True) + flow_embedding + text + 768 * 2 + 2
    if preset.endswith("vicuna7b"):  # fixed-sampler stage: only the Q-Former side trains
        assert count(model, trainable=True) == count(model.branches[0].stages[0]) + count(model.branches[0].stages[2])
    else:  # SF stage: everything but the vision tower
        assert count(model, trainable=True) == count(model) - count(model.branches[0].encoder)
