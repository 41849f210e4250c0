"""Video-XL's frame sampling: training at 1 fps capped by frames_upbound (linspace over the whole video when 1 fps
gives more), evaluation at np.linspace(0, N-1, max_frames_num, dtype=int), checked on the shipped configs."""
from pathlib import Path

import numpy as np
import pytest

from vlmkit.config import load_config, to_dict
from vlmkit.video_sampling import VideoSampling
from vlmkit.registry import SAMPLERS

ROOT = Path(__file__).resolve().parents[2]
EVAL_CONFIGS = sorted((ROOT / "eval_configs" / "video_xl").glob("*.yaml"))


def sampling_of(path, purpose):
    return VideoSampling.from_dict(to_dict(load_config(path, purpose=purpose))["model"]["sampling"])


def test_training_rule_is_one_fps_then_linspace_over_the_whole_video():
    sampler = SAMPLERS.build({"name": "fps_upbound", "target_fps": 1.0, "max_frames": 128})
    assert sampler(1800, 30.0) == list(range(0, 1800, 30))  # 60 s: every second
    assert sampler(128 * 30, 30.0) == list(range(0, 128 * 30, 30))  # exactly the upbound: still 1 fps
    ten_minutes = 18000
    assert sampler(ten_minutes, 30.0) == np.linspace(0, ten_minutes - 1, 128, dtype=int).tolist()
    # not a thinning of the 1 fps candidates, which is what the VideoGPT+ fps sampler does
    videogpt_plus = SAMPLERS.build({"name": "fps", "target_fps": 1.0, "max_frames": 128, "min_frames": 1})
    assert videogpt_plus(ten_minutes, 30.0) != sampler(ten_minutes, 30.0)
    assert sampler(7, 29.97) == [0] and sampler(100, 0.5) == list(range(100))  # stride round(fps) >= 1
    with pytest.raises(ValueError, match="needs the video's fps"):
        sampler(100, None)


@pytest.mark.parametrize("path", EVAL_CONFIGS, ids=lambda p: p.name)
def test_eval_configs_sample_like_the_published_inference(path):
    sampling = sampling_of(path, "eval")
    n = sampling.max_frames
    assert n in (128, 2048)
    sampler = sampling.sampler(train=False)
    for frames in (n // 2, n, n + 1, 3 * n + 7, 54321, 180000):
        for fps in (25.0, 30.0, 59.94):
            assert sampler(frames, fps) == np.linspace(0, frames - 1, n, dtype=int).tolist(), (frames, fps)


@pytest.mark.parametrize("name, upbound", [("finetune_qwen2_7b.yaml", 128), ("pretrain_qwen2_7b.yaml", 4)])
def test_train_configs_sample_one_fps_up_to_frames_upbound(name, upbound):
    sampling = sampling_of(ROOT / "train_configs" / "video_xl" / name, "train")
    sampler = sampling.sampler(train=True)
    assert sampling.max_frames == upbound
    short = upbound * 30  # as many seconds as the upbound: one frame per second
    assert sampler(short, 30.0) == list(range(0, short, 30))
    assert sampler(10 * short + 5, 30.0) == np.linspace(0, 10 * short + 4, upbound, dtype=int).tolist()


def test_evaluating_with_the_training_rule_is_a_choice():
    sampler = VideoSampling({"name": "fps_upbound", "max_frames": 8, "eval_linspace": False}).sampler(train=False)
    assert sampler(200, 30.0) == list(range(0, 200, 30)) != np.linspace(0, 199, 8, dtype=int).tolist()
