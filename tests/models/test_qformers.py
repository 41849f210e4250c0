"""Q-Former adapters: numerical equality with transformers, per-frame shapes, text input, frame positions."""
from __future__ import annotations

import pytest
import torch
from transformers import (Blip2Config, Blip2Model, Blip2QFormerConfig, Blip2QFormerModel, InstructBlipQFormerConfig,
                          InstructBlipQFormerModel, OPTConfig)

from vlmkit.errors import ConfigError
from vlmkit.registry import ADAPTERS, ENCODERS

TINY_QF = dict(hidden_size=32, num_attention_heads=4, intermediate_size=64)
TINY_TEXT = dict(vocab_size=50, max_position_embeddings=16)


def qformer(in_dim=48, **kwargs):
    cfg = {"name": "qformer", "num_query": 4, "num_layers": 2, "config": TINY_QF, **kwargs}
    return ADAPTERS.build(cfg, in_dim=in_dim).eval()


def instruct_qformer(in_dim=48, **kwargs):
    cfg = {"name": "instruct_qformer", "num_query": 4, "num_layers": 2, "config": {**TINY_QF, **TINY_TEXT}, **kwargs}
    return ADAPTERS.build(cfg, in_dim=in_dim).eval()


def video_qformer(in_dim=32, **kwargs):
    cfg = {"name": "video_qformer", "num_query": 4, "max_frame_pos": 4, "config": TINY_QF, **kwargs}
    return ADAPTERS.build(cfg, in_dim=in_dim).eval()


def test_registered():
    assert {"qformer", "instruct_qformer", "video_qformer"} <= set(ADAPTERS.names())
    assert ADAPTERS.get("blip2_qformer") is ADAPTERS.get("qformer")


def test_qformer_matches_transformers_on_shared_weights():
    torch.manual_seed(0)
    reference = Blip2QFormerModel(Blip2QFormerConfig(**TINY_QF, num_hidden_layers=3, cross_attention_frequency=2,
                                                     encoder_hidden_size=48)).eval()
    ours = qformer(num_layers=3, cross_attention_freq=2)
    ours.qformer.load_state_dict(reference.state_dict())  # strict: the same module tree
    x = torch.randn(2, 3, 7, 48)
    with torch.no_grad():
        expected = reference(query_embeds=ours.query_tokens.expand(6, -1, -1),
                             encoder_hidden_states=x.flatten(0, 1)).last_hidden_state
        got = ours(x)
    assert got.shape == (2, 3, 4, 32)
    torch.testing.assert_close(got.flatten(0, 1), expected, atol=1e-5, rtol=0)


def test_eva_plus_qformer_match_blip2_qformer_features():
    """The EVA encoder and the Q-Former, loaded with a BLIP-2 model's weights, reproduce get_qformer_features."""
    torch.manual_seed(0)
    vision = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  image_size=32, patch_size=8)
    text = OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
                     word_embed_proj_dim=16, max_position_embeddings=32)
    blip2 = Blip2Model(Blip2Config(vision_config=vision, qformer_config={**TINY_QF, "num_hidden_layers": 2},
                                   text_config=text.to_dict(), num_query_tokens=4)).eval()
    with torch.no_grad():
        blip2.query_tokens.normal_()
    encoder = ENCODERS.build({"name": "eva_vit_g", "config": vision})
    adapter = qformer(in_dim=encoder.out_dim)
    encoder.model.load_state_dict(blip2.vision_model.state_dict())
    adapter.qformer.load_state_dict(blip2.qformer.state_dict())
    adapter.query_tokens.data.copy_(blip2.query_tokens)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = blip2.get_qformer_features(pixel_values=pixels)
        got = adapter(encoder(pixels.unsqueeze(1)))
    torch.testing.assert_close(got[:, 0], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("freq,layers_with_cross", [(1, [0, 1, 2, 3]), (2, [0, 2]), (3, [0, 3])])
def test_cross_attention_placement(freq, layers_with_cross):
    adapter = qformer(num_layers=4, cross_attention_freq=freq)
    layers = adapter.qformer.encoder.layer
    assert [i for i, layer in enumerate(layers) if layer.has_cross_attention] == layers_with_cross
    assert all(hasattr(layer, "crossattention") == layer.has_cross_attention for layer in layers)


def test_out_tokens_agree_with_forward():
    for adapter, (t, n) in [(qformer(), (5, 6)), (video_qformer(in_dim=48), (3, 6))]:
        out = adapter(torch.randn(2, t, n, 48))
        assert tuple(out.shape[1:3]) == adapter.out_tokens(in_tokens=n, in_frames=t)
        assert out.shape[-1] == adapter.out_dim


def test_wrong_width_or_rank_raises_clearly():
    with pytest.raises(ValueError, match="built for input width D=48 .* got width 40"):
        qformer()(torch.randn(1, 2, 3, 40))
    with pytest.raises(ValueError, match=r"\(B, T, N, D\)"):
        video_qformer()(torch.randn(2, 3, 32))


def test_config_cannot_set_derived_or_duplicated_keys():
    with pytest.raises(ConfigError, match="encoder_hidden_size.*in_dim"):
        qformer(config={**TINY_QF, "encoder_hidden_size": 1408})
    with pytest.raises(ConfigError, match="num_layers"):
        qformer(config={**TINY_QF, "num_hidden_layers": 3})
    with pytest.raises(ConfigError, match="unknown key 'hiden_size' for transformers Blip2QFormerConfig"):
        qformer(config={**TINY_QF, "hiden_size": 3})
    with pytest.raises(ConfigError, match="supplied by vlmkit"):
        ADAPTERS.build({"name": "qformer", "in_dim": 48})


def test_frozen_qformer_gets_no_gradients_but_trainable_one_does():
    frozen = qformer(freeze=True)
    frozen.train()
    assert not frozen.training and not frozen.qformer.training
    assert not any(p.requires_grad for p in frozen.parameters())
    head = ADAPTERS.build({"name": "linear"}, in_dim=32, out_dim=8)
    head(frozen(torch.randn(1, 2, 3, 48))).sum().backward()
    assert all(p.grad is None for p in frozen.parameters())
    assert head.proj.weight.grad is not None
    trainable = qformer(gradient_checkpointing=True)
    trainable.train()
    trainable(torch.randn(1, 2, 3, 48)).sum().backward()
    assert trainable.query_tokens.grad is not None


# ---------------------------------------------------------------- InstructBLIP
def test_instruct_qformer_matches_transformers():
    torch.manual_seed(0)
    reference = InstructBlipQFormerModel(InstructBlipQFormerConfig(
        **TINY_QF, **TINY_TEXT, num_hidden_layers=2, cross_attention_frequency=2, encoder_hidden_size=48)).eval()
    ours = instruct_qformer()
    ours.qformer.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 7, 48)
    text_ids = torch.randint(1, 50, (2, 5))
    text_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        got = ours(x, text_ids=text_ids, text_mask=text_mask)
        for b in range(2):
            for t in range(3):
                mask = torch.cat([torch.ones(1, 4, dtype=torch.long), text_mask[b:b + 1]], dim=1)
                expected = reference(input_ids=text_ids[b:b + 1], attention_mask=mask,
                                     query_embeds=ours.query_tokens, encoder_hidden_states=x[b:b + 1, t])
                torch.testing.assert_close(got[b, t], expected.last_hidden_state[0, :4], atol=1e-5, rtol=0)
    assert got.shape == (2, 3, 4, 32) and ours.reads_text


def test_instruct_qformer_reads_text_and_respects_its_mask():
    torch.manual_seed(0)
    adapter = instruct_qformer()
    x = torch.randn(1, 2, 7, 48)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        a = adapter(x, text_ids=ids)
        b = adapter(x, text_ids=torch.tensor([[9, 10, 11, 12]]))
        padded_1 = adapter(x, text_ids=torch.tensor([[5, 6, 13, 14]]), text_mask=torch.tensor([[1, 1, 0, 0]]))
        padded_2 = adapter(x, text_ids=torch.tensor([[5, 6, 20, 21]]), text_mask=torch.tensor([[1, 1, 0, 0]]))
    assert not torch.allclose(a, b, atol=1e-4)
    torch.testing.assert_close(padded_1, padded_2)


def test_instruct_qformer_text_errors():
    adapter = instruct_qformer()
    with pytest.raises(ValueError, match="needs the instruction as text_ids"):
        adapter(torch.randn(1, 2, 7, 48))
    with pytest.raises(ValueError, match=r"text_ids shaped \(B, L\) with B=1"):
        adapter(torch.randn(1, 2, 7, 48), text_ids=torch.ones(2, 3, dtype=torch.long))
    no_text = instruct_qformer(require_text=False)
    assert no_text(torch.randn(1, 2, 7, 48)).shape == (1, 2, 4, 32)


# ---------------------------------------------------------------- video Q-Former
def test_video_qformer_equals_qformer_over_positioned_frame_tokens():
    torch.manual_seed(0)
    adapter = video_qformer()
    x = torch.randn(2, 3, 5, 32)
    with torch.no_grad():
        keys = (x + adapter.frame_position_embedding.weight[:3, None, :]).reshape(2, 15, 32)
        expected = adapter.qformer(query_embeds=adapter.query_tokens.expand(2, -1, -1),
                                   encoder_hidden_states=keys).last_hidden_state
        got = adapter(x)
    assert got.shape == (2, 1, 4, 32)
    torch.testing.assert_close(got[:, 0], expected)


def test_video_qformer_defaults_are_video_llama():
    adapter = ADAPTERS.build({"name": "video_qformer", "config": TINY_QF}, in_dim=48)
    layers = adapter.qformer.encoder.layer
    assert len(layers) == 2 and all(layer.has_cross_attention for layer in layers)
    assert adapter.num_query == 32 and adapter.frame_position_embedding.num_embeddings == 32
    assert adapter.frame_position_embedding.embedding_dim == 48  # added to the input tokens


def test_frame_positions_interpolate_beyond_max_frame_pos():
    adapter = video_qformer()  # max_frame_pos 4
    table = adapter.frame_position_embedding.weight
    torch.testing.assert_close(adapter.frame_positions(3), table[:3])
    stretched = adapter.frame_positions(7)  # 2 * 4 - 1: every other row is an original row
    assert stretched.shape == (7, 32)
    torch.testing.assert_close(stretched[::2], table)
    torch.testing.assert_close(stretched[1], (table[0] + table[1]) / 2)
    out = adapter(torch.randn(1, 9, 2, 32))  # no index error beyond the table
    assert out.shape == (1, 1, 4, 32) and torch.isfinite(out).all()


def test_frame_positions_error_mode():
    adapter = video_qformer(frame_pos_overflow="error")
    assert adapter(torch.randn(1, 4, 2, 32)).shape == (1, 1, 4, 32)
    with pytest.raises(ValueError, match="got 5 frames .* max_frame_pos=4"):
        adapter(torch.randn(1, 5, 2, 32))
    with pytest.raises(ValueError, match="max_frame_pos=4"):
        adapter.out_tokens(in_tokens=2, in_frames=5)
    with pytest.raises(ConfigError, match="expected one of"):
        video_qformer(frame_pos_overflow="clamp")


def test_full_size_qformers_on_meta_device():
    with torch.device("meta"):
        blip2 = ADAPTERS.build({"name": "qformer"}, in_dim=1408)
        video = ADAPTERS.build({"name": "video_qformer"}, in_dim=768)
    assert blip2.out_dim == 768 and blip2.out_tokens(257, 8) == (8, 32)
    layers = blip2.qformer.encoder.layer
    assert len(layers) == 12 and [i for i, lyr in enumerate(layers) if lyr.has_cross_attention] == [0, 2, 4, 6, 8, 10]
    assert layers[0].crossattention.attention.key.in_features == 1408
    # BERT-base query path (text FFNs are not built): ~105M parameters.
    assert 100e6 < sum(p.numel() for p in blip2.parameters()) < 110e6
    assert video.out_dim == 768 and video.out_tokens(32, 8) == (1, 32)
    # 2 BERT-base layers, each with self-attention, cross-attention and the query FFN: ~19M.
    assert 18.5e6 < sum(p.numel() for p in video.parameters()) < 19.5e6
