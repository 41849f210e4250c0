"""Vision encoders: registry builds, (B, T, N, D) outputs, layer selection, freezing, meta full-size builds."""
from __future__ import annotations

import pytest
import torch
from transformers import (Blip2Config, Blip2Model, Blip2VisionConfig, Blip2VisionModel, CLIPConfig, CLIPModel,
                          CLIPVisionConfig, CLIPVisionModel, OPTConfig)

from vlmkit.contracts import CLIP_MEAN, ImagePreprocessing
from vlmkit.errors import ConfigError
from vlmkit.registry import ENCODERS

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=8)
ENCODER_NAMES = ["clip_vit", "siglip", "eva_vit_g"]


def tiny_encoder(name: str, **kwargs):
    return ENCODERS.build({"name": name, "config": TINY, **kwargs})


def frames(batch=2, time=3, size=32):
    return torch.randn(batch, time, 3, size, size)


def test_registered_with_aliases():
    assert set(ENCODER_NAMES) <= set(ENCODERS.names())
    assert ENCODERS.get("clip") is ENCODERS.get("clip_vit")
    assert ENCODERS.get("eva_clip_g") is ENCODERS.get("eva_vit_g")
    assert ENCODERS.get("siglip_vit") is ENCODERS.get("siglip")


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_output_shape_matches_out_dim_and_tokens(name):
    torch.manual_seed(0)
    encoder = tiny_encoder(name)
    out = encoder(frames())
    assert out.shape == (2, 3, encoder.tokens_per_frame, encoder.out_dim)
    assert encoder.out_tokens(in_tokens=0, in_frames=3) == (3, out.shape[2])
    assert encoder.out_dim == 32
    assert isinstance(encoder.preprocessing, ImagePreprocessing)
    assert encoder.preprocessing.size == 32


def test_token_counts_per_family():
    assert tiny_encoder("clip_vit").tokens_per_frame == 16          # CLS dropped by default
    assert tiny_encoder("clip_vit", drop_cls=False).tokens_per_frame == 17
    assert tiny_encoder("siglip").tokens_per_frame == 16            # SigLIP has no CLS
    assert tiny_encoder("eva_vit_g").tokens_per_frame == 17         # BLIP-2 keeps CLS


def test_clip_selects_the_configured_hidden_layer():
    torch.manual_seed(0)
    encoder = tiny_encoder("clip_vit", select_layer=-2, drop_cls=True)
    reference = CLIPVisionModel(CLIPVisionConfig(**TINY)).eval()
    reference.load_state_dict(encoder.model.state_dict())
    x = frames(batch=1, time=2)
    expected = reference(pixel_values=x[0], output_hidden_states=True).hidden_states[-2][:, 1:]
    torch.testing.assert_close(encoder(x)[0], expected)
    last = tiny_encoder("clip_vit", select_layer=-1, drop_cls=False)
    last.load_state_dict(encoder.state_dict())
    assert not torch.allclose(last(x)[:, :, 1:], encoder(x))


def test_eva_output_is_blip2_vision_last_hidden_state():
    torch.manual_seed(0)
    encoder = tiny_encoder("eva_vit_g")
    reference = Blip2VisionModel(Blip2VisionConfig(**TINY)).eval()
    reference.load_state_dict(encoder.model.state_dict())
    x = frames(batch=2, time=1)
    torch.testing.assert_close(encoder(x)[:, 0], reference(pixel_values=x[:, 0]).last_hidden_state)


def test_preprocessing_per_family():
    clip = tiny_encoder("clip_vit").preprocessing
    assert (clip.mean, clip.crop, clip.interpolation) == (CLIP_MEAN, True, "bicubic")
    siglip = tiny_encoder("siglip").preprocessing
    assert (siglip.mean, siglip.std, siglip.crop) == ((0.5,) * 3, (0.5,) * 3, False)
    eva = tiny_encoder("eva_vit_g").preprocessing
    assert (eva.mean, eva.crop) == (CLIP_MEAN, False)


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_freeze_really_freezes(name):
    encoder = tiny_encoder(name, freeze=True)
    encoder.train()
    assert not encoder.training and not encoder.model.training
    assert all(not p.requires_grad for p in encoder.parameters())
    head = torch.nn.Linear(encoder.out_dim, 1)
    head(encoder(frames())).sum().backward()
    assert all(p.grad is None for p in encoder.parameters())
    assert head.weight.grad is not None


def test_unfrozen_encoder_trains():
    encoder = tiny_encoder("clip_vit", freeze=False)
    encoder.train()
    assert encoder.model.training
    encoder(frames()).sum().backward()
    assert all(p.grad is not None for n, p in encoder.named_parameters() if "layers.1" not in n
               and "post_layernorm" not in n)  # select_layer -2 skips the last block and post-layernorm


def test_gradient_checkpointing_and_dtype():
    encoder = tiny_encoder("siglip", freeze=False, gradient_checkpointing=True)
    assert any(getattr(m, "gradient_checkpointing", False) for m in encoder.model.modules())
    encoder.train()
    encoder(frames()).sum().backward()
    bf16 = tiny_encoder("eva_vit_g", dtype="bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    assert bf16(frames()).dtype == torch.bfloat16


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_bad_frame_shapes_raise_clearly(name):
    encoder = tiny_encoder(name)
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        encoder(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"built for \(C, H, W\)=\(3, 32, 32\)"):
        encoder(torch.randn(1, 2, 3, 64, 64))


def test_config_mistakes_raise_config_errors():
    with pytest.raises(ConfigError, match="unknown arch 'clip_vit_l14_999'.*clip_vit_l14_336"):
        ENCODERS.build({"name": "clip_vit", "arch": "clip_vit_l14_999"})
    with pytest.raises(ConfigError, match="set one of 'pretrained'"):
        ENCODERS.build({"name": "siglip"})
    with pytest.raises(ConfigError, match="unknown key 'hiden_size' for transformers Blip2VisionConfig.*"
                                          "Did you mean 'hidden_size'"):
        ENCODERS.build({"name": "eva_vit_g", "config": {"hiden_size": 32}})
    with pytest.raises(ConfigError, match="select_layer 5 is outside"):
        tiny_encoder("clip_vit", select_layer=5)
    with pytest.raises(ConfigError, match="unknown key 'selectlayer'"):
        ENCODERS.build({"name": "clip_vit", "config": TINY, "selectlayer": -2})
    with pytest.raises(ConfigError, match="expected one of"):
        ENCODERS.build({"name": "clip_vit", "config": TINY, "dtype": "fp64"})


def test_arch_preset_with_config_overrides():
    encoder = ENCODERS.build({"name": "clip_vit", "arch": "clip_vit_l14_336",
                              "config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                         "num_attention_heads": 2}})
    assert encoder.image_size == 336 and encoder.patch_size == 14 and encoder.out_dim == 32


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_full_size_presets_on_meta_device():
    with torch.device("meta"):
        clip = ENCODERS.build({"name": "clip_vit", "arch": "clip_vit_l14_336", "drop_cls": False})
        eva = ENCODERS.build({"name": "eva_vit_g", "arch": "eva_vit_g14"})
        siglip = ENCODERS.build({"name": "siglip", "arch": "siglip_so400m_patch14_384"})
    assert all(p.is_meta for p in clip.parameters())
    # CLIP ViT-L/14-336: 24 layers, 1024 wide, 577 tokens with CLS (576 without), ~304M parameters.
    assert (clip.out_dim, clip.tokens_per_frame, clip.model.config.num_hidden_layers) == (1024, 577, 24)
    assert 300e6 < count(clip) < 306e6
    # EVA ViT-g/14 as in BLIP-2: 39 of 40 blocks, 1408 wide, 257 tokens at 224 px, about 1.0B parameters.
    assert (eva.out_dim, eva.tokens_per_frame, eva.model.config.num_hidden_layers) == (1408, 257, 39)
    assert 0.98e9 < count(eva) < 0.99e9
    assert eva.preprocessing.size == 224
    # SigLIP so400m/14 at 384 px: 27x27 = 729 tokens, 1152 wide (~413M without the unused pooling head).
    assert (siglip.out_dim, siglip.tokens_per_frame) == (1152, 729)
    assert 0.41e9 < count(siglip) < 0.42e9


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pretrained_loads_local_checkpoints_strictly(tmp_path):
    torch.manual_seed(0)
    text = OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
                     word_embed_proj_dim=16, max_position_embeddings=32)
    blip2 = Blip2Model(Blip2Config(vision_config=TINY, text_config=text.to_dict(), num_query_tokens=2,
                                   qformer_config=dict(hidden_size=32, num_attention_heads=4, intermediate_size=64,
                                                       num_hidden_layers=1, encoder_hidden_size=32)))
    blip2.save_pretrained(tmp_path / "blip2")                     # the full BLIP-2 layout (vision_model.*)
    blip2.vision_model.save_pretrained(tmp_path / "eva")          # a vision-only checkpoint
    for path in ("blip2", "eva"):
        encoder = ENCODERS.build({"name": "eva_vit_g", "pretrained": str(tmp_path / path)})
        assert same_weights(encoder.model, blip2.vision_model)
    bf16 = ENCODERS.build({"name": "eva_vit_g", "pretrained": str(tmp_path / "eva"), "dtype": "bfloat16"})
    assert same_weights(bf16.model, blip2.vision_model.to(torch.bfloat16))
    clip = CLIPModel(CLIPConfig(vision_config=TINY, text_config=dict(vocab_size=64, hidden_size=16,
                                                                      intermediate_size=32, num_hidden_layers=1,
                                                                      num_attention_heads=2)))
    clip.save_pretrained(tmp_path / "clip")                       # a full CLIP checkpoint, as on the hub
    encoder = ENCODERS.build({"name": "clip_vit", "pretrained": str(tmp_path / "clip")})
    assert same_weights(encoder.model, clip.vision_model)
    with pytest.raises(ConfigError, match="lacks weights of the Blip2VisionModel tower: encoder.layers.2"):
        ENCODERS.build({"name": "eva_vit_g", "pretrained": str(tmp_path / "eva"), "config": {"num_hidden_layers": 3}})
    # 'arch' next to 'pretrained' describes the checkpoint (for offline builds); a checkpoint of another size fails
    with pytest.raises(ConfigError, match="is not a 'clip_vit_l14' tower: hidden_size: arch 1024"):
        ENCODERS.build({"name": "clip_vit", "pretrained": str(tmp_path / "clip"), "arch": "clip_vit_l14"})


@pytest.mark.parametrize("name", ["clip_vit", "siglip"])
@pytest.mark.parametrize("select_layer", [-2, -1, 1])
def test_every_trainable_parameter_gets_a_gradient(name, select_layer):
    """Layers past the selected hidden state are frozen: DDP rejects trainable parameters without gradients."""
    encoder = tiny_encoder(name, freeze=False, select_layer=select_layer)
    encoder(frames(1, 1)).sum().backward()
    missing = [n for n, p in encoder.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert any(p.requires_grad for p in encoder.parameters())
