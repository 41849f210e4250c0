"""InternVideo2's chunked video ViT: shapes, the block math, chunk independence, checkpoint names, full size."""
import pytest
import torch

from tests.models.published_keys import internvideo2_stage2
from tests.models.tiny_published_checkpoints import random_tensors
from vlmkit.errors import ConfigError
from vlmkit.registry import ENCODERS

TINY = {"embed_dim": 32, "depth": 3, "num_heads": 4, "mlp_ratio": 2.0, "patch_size": 8, "img_size": 32,
        "tubelet_size": 1}


def tiny(**kwargs):
    torch.manual_seed(0)
    return ENCODERS.build({"name": "internvideo2", "config": TINY, **kwargs})


def test_frames_map_to_per_frame_tokens_and_chunks_are_independent():
    enc = tiny()
    frames = torch.randn(2, 8, 3, 32, 32)
    out = enc(frames)
    assert out.shape == (2, 8, 16, 32) and enc.out_tokens(16, 8) == (8, 16)
    # chunk k of the output is the encoding of frames [4k, 4k+4) alone
    torch.testing.assert_close(out[:, 4:], enc(frames[:, 4:]))
    with pytest.raises(ConfigError, match="do not split into chunks of 4"):
        enc.out_tokens(16, 6)


def reference_block(block, x, heads):
    """The published block written out: RMSNorm, bias-free qkv, RMS q/k norm over the full width, LayerScale."""
    def rms(t, weight):
        return weight * t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6)
    b, n, d = x.shape
    h = rms(x, block.norm1.weight)
    qkv = (h @ block.attn.qkv.weight.T).reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q = rms(q.transpose(1, 2).flatten(-2), block.attn.q_norm.weight).view(b, n, heads, -1).transpose(1, 2)
    k = rms(k.transpose(1, 2).flatten(-2), block.attn.k_norm.weight).view(b, n, heads, -1).transpose(1, 2)
    attn = ((q * (d // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
    out = block.attn.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
    x = x + block.ls1.gamma * out
    h = rms(x, block.norm2.weight)
    return x + block.ls2.gamma * block.mlp.fc2(torch.nn.functional.gelu(block.mlp.fc1(h)))


def test_output_is_the_second_to_last_block_of_the_published_math_without_cls():
    enc = tiny()
    for block in enc.blocks:  # LayerScale at 1e-5 would hide mistakes in the branches
        torch.nn.init.normal_(block.ls1.gamma)
        torch.nn.init.normal_(block.ls2.gamma)
    frames = torch.randn(1, 4, 3, 32, 32)
    x = enc.patch_embed.proj(frames.transpose(1, 2)).flatten(2).transpose(1, 2)
    x = torch.cat([enc.cls_token, x], dim=1) + enc.pos_embed
    for block in enc.blocks[:2]:  # depth 3, select_block -2 -> blocks 0 and 1
        x = reference_block(block, x, heads=4)
    torch.testing.assert_close(enc(frames), x[:, 1:].reshape(1, 4, 16, 32), rtol=1e-4, atol=1e-5)
    last = tiny(select_block=-1)
    assert last.blocks_used == 3 and enc.blocks_used == 2


def published_names(enc=None):
    """The stage-2 checkpoint ('module' -> 'vision_encoder.' + PretrainInternVideo2's names, distillation heads
    included: published_keys.internvideo2_stage2, from InternVideo2's own model code) at TINY's sizes with 4-frame
    position tables, plus a text-side tensor; random values."""
    shapes = internvideo2_stage2(width=32, depth=3, mlp_hidden=64, image_size=32, patch_size=8, frames=4)
    state = random_tensors(shapes)
    state["text_encoder.bert.embeddings.word_embeddings.weight"] = torch.randn(10, 8)
    return state


def test_published_checkpoint_names_load(tmp_path):
    enc = tiny()
    names = {k for k in enc.state_dict()}
    assert {"patch_embed.proj.weight", "cls_token", "pos_embed", "img_pos_embed", "blocks.0.attn.qkv.weight",
            "blocks.0.attn.q_norm.weight", "blocks.0.ls1.gamma", "blocks.2.mlp.fc2.bias"} <= names
    assert "blocks.0.attn.qkv.bias" not in names  # qkv_bias=False in InternVideo2-1B
    state = published_names(enc)
    path = tmp_path / "InternVideo2-stage2_1b-224p-f4.pt"
    torch.save({"module": state}, path)
    loaded = ENCODERS.build({"name": "internvideo2", "config": TINY, "pretrained": str(path)})
    torch.testing.assert_close(loaded.blocks[1].attn.qkv.weight, state["vision_encoder.blocks.1.attn.qkv.weight"])
    torch.testing.assert_close(loaded.pos_embed, state["vision_encoder.pos_embed"])
    del state["vision_encoder.blocks.2.mlp.fc1.weight"]
    torch.save({"model": state}, path)
    with pytest.raises(RuntimeError, match="blocks.2.mlp.fc1.weight"):
        ENCODERS.build({"name": "internvideo2", "config": TINY, "pretrained": str(path)})
    torch.save({k: v for k, v in published_names(enc).items()}, path)
    with pytest.raises(ConfigError, match="another chunk length"):
        ENCODERS.build({"name": "internvideo2", "config": TINY, "pretrained": str(path), "chunk_size": 8})


def test_full_size_internvideo2_1b_on_meta():
    with torch.device("meta"):
        enc = ENCODERS.build({"name": "internvideo2", "arch": "internvideo2_1b_p14_224"})
    params = sum(p.numel() for p in enc.parameters())
    assert params == pytest.approx(1.01e9, rel=0.01), params
    assert enc.out_dim == 1408 and len(enc.blocks) == 40 and enc.blocks_used == 39
    assert enc.blocks[0].mlp.fc1.out_features == 6144
    # 16 frames = 4 chunks x (4 x 16 x 16) = 4 x 1024 tokens = 16 frames x 256
    assert enc.out_tokens(256, 16) == (16, 256) and enc.pos_embed.shape == (1, 1025, 1408)
    assert enc.preprocessing.size == 224 and enc.preprocessing.mean == (0.485, 0.456, 0.406)
