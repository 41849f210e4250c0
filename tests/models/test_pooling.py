import pytest
import torch

from vlmkit.registry import POOLERS


def build(cfg, in_dim=8):
    return POOLERS.build(cfg, in_dim=in_dim)


@pytest.mark.parametrize("level,video,image", [(1, 16, 24), (2, 8, 12), (4, 4, 6), (8, 2, 3), (16, 1, 2)])
def test_pool_level_grids_match_the_fork(level, video, image):
    pool = build({"name": "adaptive_avg_2d", "pool_level": level})
    assert pool.out_tokens(256, 16) == (16, video * video)
    assert pool.out_tokens(576, 16) == (16, image * image)


@pytest.mark.parametrize("level,total", [(1, 13312), (2, 3328), (4, 832), (8, 208), (16, 80)])
def test_videogpt_plus_token_totals(level, total):
    pool = build({"name": "adaptive_2d", "pool_level": level})
    context = 16 * pool.out_tokens(576, 16)[1]      # CLIP branch: 16 frames of 24x24
    video = 4 * 4 * pool.out_tokens(256, 4)[1]      # 4 chunks x 4 frames of 16x16
    assert context + video == total


def test_adaptive_2d_matches_torch_and_forward_shape():
    x = torch.randn(2, 3, 36, 8)
    out = build({"name": "adaptive_avg_2d", "grid": 4})(x)
    expected = torch.nn.functional.adaptive_avg_pool2d(x.reshape(6, 6, 6, 8).permute(0, 3, 1, 2), 4)
    assert out.shape == (2, 3, 16, 8)
    torch.testing.assert_close(out, expected.permute(0, 2, 3, 1).reshape(2, 3, 16, 8))


def test_adaptive_3d_equals_torch_module_including_overlapping_windows():
    x = torch.randn(2, 16, 576, 4)
    for shape, tokens in (((16, 12, 12), 2304), ((8, 16, 16), 2048), ((16, 8, 8), 1024)):
        pool = build({"name": "adaptive_avg_3d", "pooling_shape": list(shape)}, in_dim=4)
        t, n = pool.out_tokens(576, 16)
        assert t * n == tokens
        out = pool(x)
        volume = x.reshape(2, 16, 24, 24, 4).permute(0, 4, 1, 2, 3)
        ref = torch.nn.AdaptiveAvgPool3d(shape)(volume).permute(0, 2, 3, 4, 1).reshape(2, shape[0], -1, 4)
        torch.testing.assert_close(out, ref)


def test_stride_and_temporal_mean():
    x = torch.randn(1, 4, 16, 8)
    stride = build({"name": "avg_pool_2d", "kernel": 2})
    assert stride(x).shape == (1, 4, 4, 8) and stride.out_tokens(16, 4) == (4, 4)
    torch.testing.assert_close(stride(x)[0, 0, 0], x[0, 0, [0, 1, 4, 5]].mean(0))
    mean = build({"name": "temporal_mean"})
    assert mean(x).shape == (1, 1, 16, 8) and mean.out_tokens(16, 4) == (1, 16)
    torch.testing.assert_close(mean(x)[0, 0], x[0].mean(0))


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="exactly one of 'pool_level'"):
        build({"name": "adaptive_avg_2d"})
    with pytest.raises(ValueError, match="square grid of tokens per frame, got N=577"):
        build({"name": "adaptive_avg_2d", "pool_level": 2})(torch.randn(1, 1, 577, 8))
    with pytest.raises(ValueError, match="input width D=8"):
        build({"name": "temporal_mean"})(torch.randn(1, 2, 4, 5))
    with pytest.raises(ValueError, match="does not fit"):
        build({"name": "avg_pool_2d", "kernel": 4})(torch.randn(1, 1, 4, 8))
