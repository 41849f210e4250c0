"""VideoTGB's temporal grounding sampler: shapes, span reduction to K, Gumbel determinism, pseudo-label spans,
flow estimators and BERT initialisation."""
from __future__ import annotations

import pytest
import torch

from vlmkit.errors import ConfigError
from vlmkit.models.selectors.spans import best_span, gumbel_span_draws, reduce_to, span_frames
from vlmkit.registry import SELECTORS

TINY = dict(name="temporal_grounding_sampler", tokenizer="local:word", num_selected=4, hidden_size=32, num_layers=2,
            num_heads=4, intermediate_size=64, fusion_layer=1, vocab_size=512, max_positions=80, flow_size=32,
            flow_patch=8, dropout=0.0)


def tiny_sampler(**kwargs):
    torch.manual_seed(0)
    return SELECTORS.build({**TINY, **kwargs}, num_frames=8)


def question(sampler, texts):
    enc = sampler.tokenizer(texts, padding=True, return_tensors="pt")
    return {"question_ids": enc["input_ids"], "question_mask": enc["attention_mask"]}


def test_sampler_shapes_padding_and_selection():
    sampler = tiny_sampler().eval()
    inputs = {**question(sampler, ["what moves", "which colour is the ball"]),
              "flow": torch.randn(2, 6, 2, 32, 32), "flow_lengths": torch.tensor([6, 3])}
    start, end, lengths = sampler.logits(None, inputs)
    assert start.shape == end.shape == (2, 6) and lengths.tolist() == [6, 3]
    assert (start[1, 3:] == torch.finfo(start.dtype).min).all()  # padded flow positions are never drawn
    selection = sampler([], inputs)  # flow from the batch: no pixels needed
    assert selection.indices.shape == (2, 4) and selection.loss is None
    for row in selection.indices.tolist():
        assert row == sorted(row) and all(0 <= i < 8 for i in row)
    with pytest.raises(ValueError, match="flow_size"):
        sampler.logits(None, {**inputs, "flow": torch.randn(2, 6, 2, 16, 16)})


def test_span_reduction_to_k_frames():
    assert span_frames([(2, 3), (0, 0)], length=8, num_frames=32, k=4) == [3, 11, 19, 27]  # (0,0): whole video
    assert span_frames([(2, 3), (5, 5)], length=8, num_frames=32, k=4) == [8, 9, 11, 13]  # bin midpoints of 8..13 + 22
    assert span_frames([(3, 1)], length=8, num_frames=32, k=4) == [3, 11, 19, 27]  # empty union: all frames
    assert span_frames([(9, 2)], length=8, num_frames=32, k=2) == [7, 23]  # outside the video: whole video
    assert reduce_to([5], 4) == [5, 5, 5, 5] and reduce_to([1, 2, 3], 4) == [1, 1, 2, 3]
    assert reduce_to(list(range(10)), 3) == [1, 4, 7]


def test_gumbel_draws_are_deterministic_under_a_seed_and_follow_the_logits():
    start, end = torch.randn(3, 10), torch.randn(3, 10)
    draw = lambda seed, **kw: gumbel_span_draws(start, end, generator=torch.Generator().manual_seed(seed), **kw)
    assert draw(7).shape == (3, 2, 2) and torch.equal(draw(7), draw(7))
    assert any(not torch.equal(draw(7), draw(s)) for s in range(8, 12))
    peaked = torch.full((1, 10), -5.0)
    peaked[0, 6] = 5.0
    picks = gumbel_span_draws(peaked, peaked, draws=50, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert (picks == 6).float().mean() > 0.95
    sampler = tiny_sampler().eval()
    inputs = {**question(sampler, ["what moves"]), "flow": torch.randn(1, 8, 2, 32, 32),
              "flow_lengths": torch.tensor([8])}
    torch.manual_seed(3)
    first = sampler(None, inputs).indices
    torch.manual_seed(3)
    assert torch.equal(first, sampler(None, inputs).indices)


@pytest.mark.parametrize("scores,span", [
    ([0, 0, 5, 5, 5, 0, 0, 0], (2, 4)),        # one clear block
    ([2, 9, 9, 1, 8], (1, 2)),                 # shifted by the minimum (1): 8+8 beats 7
    ([1, 1, 1, 1], (0, 3)),                    # flat scores: no rectangle, the full range
    ([0, 3, 1, 3, 0], (1, 1)),                 # ties keep the first rectangle found
    ([0.2, 0.5, 0.5, 0.5, 0.5, 0.1, 1.0], (1, 4)),  # a wide block beats a single high frame
])
def test_pseudo_label_span_on_hand_made_scores(scores, span):
    assert best_span(scores) == span


def test_frame_difference_standin_moves_with_the_object():
    flow_model = SELECTORS.build({"name": "frame_difference_flow_standin"})
    frames = torch.zeros(1, 3, 3, 32, 32)
    for t in range(3):  # a bright square moving right by 2 px per frame
        frames[0, t, :, 10:18, 4 + 2 * t:12 + 2 * t] = 1.0
    flow = flow_model(frames)
    assert flow.shape == (1, 3, 2, 32, 32) and torch.equal(flow[:, 2], flow[:, 1])
    moving = flow[0, 0].abs().sum(0)
    assert moving[:8].sum() == 0 and moving[10:18].sum() > 0  # nothing where nothing moves
    assert flow[0, 0, 0].sum() > 0 and flow[0, 0, 0].sum() > 5 * flow[0, 0, 1].abs().sum()  # rightwards


def test_raft_wrapper_loads_a_local_file_only(tmp_path):
    optical_flow = pytest.importorskip("torchvision.models.optical_flow")
    with pytest.raises(ConfigError, match="not found"):
        SELECTORS.build({"name": "raft_flow", "weights": str(tmp_path / "missing.pth")})
    torch.manual_seed(0)
    path = tmp_path / "raft_small.pth"
    torch.save(optical_flow.raft_small(weights=None).state_dict(), path)
    raft = SELECTORS.build({"name": "raft_flow", "weights": str(path), "arch": "small", "num_flow_updates": 2})
    flow = raft(torch.rand(1, 2, 3, 124, 124))  # padded to 128 inside, cropped back
    assert flow.shape == (1, 2, 2, 124, 124) and torch.isfinite(flow).all()
    with pytest.raises(ConfigError, match="raft_large"):
        SELECTORS.build({"name": "raft_flow", "weights": str(path), "arch": "large"})


def test_sampler_starts_from_bert_weights(tmp_path):
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(vocab_size=512, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=64))
    bert.save_pretrained(tmp_path / "bert")
    sampler = tiny_sampler(pretrained=str(tmp_path / "bert"))
    layer = sampler.encoder.layers[0]  # fusion mode builds layers 1.. only: BERT layer 1 lands at index 0
    assert torch.equal(layer.attention.query.weight, bert.encoder.layer[1].attention.self.query.weight)
    assert torch.equal(layer.output.weight, bert.encoder.layer[1].output.dense.weight)
    assert torch.equal(sampler.encoder.text_embedding.word_embeddings.weight, bert.embeddings.word_embeddings.weight)


def test_selector_slot_rejects_a_flow_estimator_and_too_many_frames(tmp_path):
    from tests.models.recipe_helpers import build_preset

    with pytest.raises(ValueError, match="not a frame selector"):
        build_preset(tmp_path, "videotgb/tiny_llama", "model.selector={name: frame_difference_flow_standin}")
    with pytest.raises(ValueError, match="num_selected=12"):
        build_preset(tmp_path, "videotgb/tiny_llama", "model.selector.num_selected=12")
