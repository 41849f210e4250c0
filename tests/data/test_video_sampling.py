import json

import pytest
from omegaconf import OmegaConf

from vlmkit.contracts import ImagePreprocessing
from vlmkit.data.samplers.segment_middle import SegmentMiddleSampler
from vlmkit.video_sampling import VideoSampling
from vlmkit.errors import ConfigError, RegistryError


def test_round_trips_through_a_plain_dict():
    sampling = VideoSampling({"name": "rand", "num_frames": 8}, image_size=224)
    saved = json.loads(json.dumps(sampling.to_dict()))  # what a checkpoint stores
    assert saved == {"sampler": {"name": "segment_random", "num_frames": 8}, "image_size": 224}
    restored = VideoSampling.from_dict(saved)
    assert restored == sampling
    assert restored.sampler(train=True)(80, 10.0, rng=3) == sampling.sampler(train=True)(80, 10.0, rng=3)


def test_evaluation_uses_the_deterministic_counterpart():
    sampling = VideoSampling.from_dict(OmegaConf.create({"sampler": {"name": "segment_random", "num_frames": 4}}))
    eval_sampler = sampling.sampler(train=False)
    assert isinstance(eval_sampler, SegmentMiddleSampler) and eval_sampler.rule == "interval"
    assert eval_sampler(100, 30.0) == [12, 37, 62, 87]
    fps = VideoSampling({"name": "fps", "max_frames": 32})
    assert fps.sampler(train=False) is fps.sampler(train=True) and fps.max_frames == 32


def test_resolution_comes_from_or_must_match_the_encoder():
    prep = ImagePreprocessing(size=336)
    assert VideoSampling("linspace").resolve(prep).image_size == 336
    with pytest.raises(ConfigError, match="image_size.*224 disagrees with the encoder's input size 336"):
        VideoSampling("linspace", image_size=224).processor(prep, train=False)
    processor = VideoSampling("linspace", image_size=336).processor(prep, train=True)
    assert processor.size == 336 and processor.train


def test_bad_configs_are_named():
    with pytest.raises(ConfigError, match="sampling.frames"):
        VideoSampling.from_dict({"sampler": "linspace", "frames": 8})
    with pytest.raises(ConfigError, match="sampling.image_size: expected"):
        VideoSampling.from_dict({"sampler": "linspace", "image_size": "224"})
    with pytest.raises(RegistryError, match="unknown sampler 'linspaec'.*Did you mean 'linspace'"):
        VideoSampling({"name": "linspaec"})
