import pytest
import torch

from vlmkit.contracts import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ImagePreprocessing
from vlmkit.data.processors.encoder_default import from_preprocessing
from vlmkit.errors import ConfigError
from vlmkit.registry import PROCESSORS


def build(name, **kw):
    return PROCESSORS.build({"name": name, **kw})


def random_video(t=3, h=60, w=80, seed=0):
    return torch.randint(0, 256, (t, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def normalised(frames_uint8, mean, std):
    """The hand computation: x / 255, minus mean, over std, per channel."""
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (frames_uint8.double() / 255 - mean) / std


@pytest.mark.parametrize("name, extra", [
    ("resize_center_crop", {}), ("resize_center_crop", {"stats": "imagenet"}), ("resize", {}),
    ("random_resized_crop", {}), ("pad_to_square", {})])
def test_output_is_float_tchw_at_the_configured_size(name, extra):
    out = build(name, size=32, **extra)(random_video())
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.float32


def test_clip_center_crop_matches_a_hand_computation():
    video = random_video(t=2, h=48, w=64)
    out = build("resize_center_crop", size=48)(video)  # short side already 48: only the crop moves pixels
    expected = normalised(video[..., :, 8:56], CLIP_MEAN, CLIP_STD)
    torch.testing.assert_close(out.double(), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("stats, mean, std", [("clip", CLIP_MEAN, CLIP_STD),
                                              ("imagenet", IMAGENET_MEAN, IMAGENET_STD)])
def test_normalisation_statistics_on_a_constant_colour(stats, mean, std):
    colour = torch.tensor([255, 128, 0], dtype=torch.uint8).view(1, 3, 1, 1)
    video = colour.expand(2, 3, 50, 70).contiguous()
    out = build("resize_center_crop", size=24, stats=stats)(video)
    expected = normalised(colour, mean, std).expand_as(out)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)
    # e.g. red under CLIP statistics: (1 - 0.48145466) / 0.26862954
    if stats == "clip":
        assert out[0, 0, 0, 0].item() == pytest.approx((1 - 0.48145466) / 0.26862954, abs=1e-5)


def test_resize_keeps_the_whole_frame_without_cropping():
    video = torch.zeros(1, 3, 40, 80, dtype=torch.uint8)
    video[..., :, :40] = 255  # left half white
    out = build("resize", size=20, stats="imagenet")(video)
    white, black = normalised(torch.full((1, 3, 1, 1), 255), IMAGENET_MEAN, IMAGENET_STD), \
        normalised(torch.zeros(1, 3, 1, 1), IMAGENET_MEAN, IMAGENET_STD)
    torch.testing.assert_close(out[..., 5, 2].double(), white.view(1, 3), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[..., 5, 17].double(), black.view(1, 3), atol=1e-4, rtol=0)


def test_pad_to_square_fills_with_the_mean_colour():
    video = torch.full((2, 3, 40, 80), 255, dtype=torch.uint8)
    out = build("pad_to_square", size=80)(video)
    # bands of 20 rows above and below hold int(mean * 255): normalised to about zero
    assert out[..., :18, :].abs().max() < 0.02 and out[..., 62:, :].abs().max() < 0.02
    white = normalised(torch.full((1, 3, 1, 1), 255), CLIP_MEAN, CLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out[..., 22:58, :].double(), white.expand(2, 3, 36, 80), atol=1e-4, rtol=0)


def test_random_crop_is_drawn_once_per_video_and_seeded():
    frame = random_video(t=1, seed=1)
    video = frame.expand(6, 3, 60, 80).contiguous()  # identical frames
    processor = build("random_resized_crop", size=32)
    out = processor(video, seed=5)
    assert all(torch.equal(out[0], out[i]) for i in range(1, 6))  # one crop and flip for all frames
    assert torch.equal(out, processor(video, seed=5))
    assert any(not torch.equal(out, processor(video, seed=s)) for s in range(6, 10))
    state = torch.get_rng_state()
    processor(video, seed=3)
    assert torch.equal(state, torch.get_rng_state())  # a seeded call leaves the global RNG alone


def test_flip_mirrors_the_same_crop():
    video = random_video(t=2)
    flipped = build("random_resized_crop", size=32, flip_prob=1.0)(video, seed=11)
    kept = build("random_resized_crop", size=32, flip_prob=0.0)(video, seed=11)
    torch.testing.assert_close(flipped, kept.flip(-1))


@pytest.mark.parametrize("crop, train, name", [(True, False, "resize_center_crop"), (False, False, "resize"),
                                               (True, True, "random_resized_crop")])
def test_derived_from_the_encoder_preprocessing(crop, train, name):
    prep = ImagePreprocessing(size=28, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear",
                              crop=crop)
    processor = from_preprocessing(prep, train=train)
    assert (processor.name, processor.size, processor.mean, processor.std, processor.train) == \
        (name, 28, prep.mean, prep.std, train)
    built = PROCESSORS.build({"name": "encoder_default", "train": train}, preprocessing=prep)
    video = random_video()
    torch.testing.assert_close(built(video, seed=0), processor(video, seed=0))
    out = processor(torch.full((1, 3, 30, 30), 255, dtype=torch.uint8))
    torch.testing.assert_close(out, torch.ones_like(out))  # (1 - 0.5) / 0.5


def test_encoder_preprocessing_cannot_be_set_in_a_config():
    with pytest.raises(ConfigError, match="supplied by vlmkit"):
        PROCESSORS.build({"name": "encoder_default", "preprocessing": {"size": 224}})


def test_inputs_are_checked():
    processor = build("resize_center_crop", size=16)
    with pytest.raises(TypeError, match="uint8"):
        processor(torch.rand(2, 3, 20, 20))
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\).*permute"):
        processor(torch.zeros(2, 20, 20, 3, dtype=torch.uint8))
    assert processor(torch.zeros(3, 20, 20, dtype=torch.uint8)).shape == (1, 3, 16, 16)  # one image
    with pytest.raises(ValueError, match="interpolation 'cubic'"):
        build("resize", interpolation="cubic")
    with pytest.raises(ValueError, match="scale"):
        build("random_resized_crop", scale=[0.9, 0.5])
