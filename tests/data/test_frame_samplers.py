import numpy as np
import pytest

from vlmkit.data.video import frame_range
from vlmkit.errors import ConfigError
from vlmkit.registry import SAMPLERS


def build(name, **kw):
    return SAMPLERS.build({"name": name, **kw})


def test_registered_names_and_aliases():
    assert {"linspace", "segment_random", "segment_middle", "fps", "chunk_aligned"} <= set(SAMPLERS.names())
    assert SAMPLERS.get("uniform") is SAMPLERS.get("linspace")
    assert SAMPLERS.get("rand") is SAMPLERS.get("segment_random")
    assert SAMPLERS.get("middle") is SAMPLERS.get("segment_middle")


def test_constructor_is_the_schema():
    with pytest.raises(ConfigError, match="unknown key 'num_frame'.*Did you mean 'num_frames'"):
        build("linspace", num_frame=8)
    with pytest.raises(ConfigError, match="max_frames: expected int"):
        build("fps", max_frames="16")
    with pytest.raises(ConfigError, match="rule: expected one of 'interval', 'mvbench'"):
        build("segment_middle", rule="center")


def test_linspace_truncates_like_videogpt_plus():
    # np.linspace(0, 99, 16, dtype=int)
    assert build("linspace", num_frames=16)(100, 30.0) == [
        0, 6, 13, 19, 26, 33, 39, 46, 52, 59, 66, 72, 79, 85, 92, 99]
    assert build("linspace", num_frames=4)(2, 30.0) == [0, 0, 0, 1]  # short video: frames repeat


def test_segment_middle_interval_rule():
    # edges linspace(0, 100, 17).astype(int) = 0 6 12 18 25 31 ...; index (e[i] + e[i+1]) // 2
    assert build("segment_middle", num_frames=16)(100, None) == [
        3, 9, 15, 21, 28, 34, 40, 46, 53, 59, 65, 71, 78, 84, 90, 96]


def test_segment_middle_mvbench_rule():
    # seg = 99/16 = 6.1875; int(seg/2 + round(seg*i)): i=3 -> round(18.5625)=19, 19 + 3.09 -> 22
    assert build("segment_middle", num_frames=16, rule="mvbench")(100, None) == [
        3, 9, 15, 22, 28, 34, 40, 46, 53, 59, 65, 71, 77, 83, 90, 96]


def test_mvbench_rule_with_bounds_matches_the_notebook():
    # bound (0.5 s, 2.02 s) at 25 fps -> frames 12..50; seg = 38/4 = 9.5; int(12 + 4.75 + round(9.5 i))
    first, last = frame_range(100, 25.0, 0.5, 2.02)
    local = build("segment_middle", num_frames=4, rule="mvbench")(last - first + 1, 25.0)
    assert [first + i for i in local] == [16, 26, 35, 44]  # round(9.5)=10, round(28.5)=28 (banker's)


def test_segment_random_stays_in_its_segment_and_is_seeded():
    sampler = build("segment_random", num_frames=16)
    edges = np.linspace(0, 100, 17).astype(int)
    seen = [set() for _ in range(16)]
    for seed in range(300):
        picks = sampler(100, 30.0, rng=seed)
        for i, pick in enumerate(picks):
            assert edges[i] <= pick < edges[i + 1]
            seen[i].add(pick)
    assert all(s == set(range(edges[i], edges[i + 1])) for i, s in enumerate(seen))  # both ends reachable
    assert sampler(100, 30.0, rng=7) == sampler(100, 30.0, rng=np.random.default_rng(7))
    assert any(sampler(100, 30.0, rng=0) != sampler(100, 30.0, rng=s) for s in range(1, 5))
    with pytest.raises(ValueError, match="rng"):
        sampler(100, 30.0)
    # 3 frames, 16 segments: edges 0 0 0 0 0 0 1 1 ...; an empty segment takes its start frame
    assert sampler(3, 30.0, rng=0) == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]


@pytest.mark.parametrize("num_frames, fps, expected", [
    (300, 30.0, list(range(0, 300, 30))),                                   # 10 s: all 10 one-per-second frames
    (900, 30.0, [0, 30, 90, 150, 210, 270, 330, 390, 450, 510, 570, 630, 690, 750, 810, 870]),  # 30 -> cap 16
    (120, 30.0, [0, 17, 34, 51, 68, 85, 102, 119]),                         # 4 s < min 8: stride 119 // 7 = 17
    (5, 30.0, [0, 1, 2, 3, 4]),                                             # fewer frames than min: all of them
    (250, 29.97, list(range(0, 250, 30))[:9]),                              # stride round(29.97) = 30
])
def test_fps_sampler_is_videogpt_plus_rule(num_frames, fps, expected):
    assert build("fps", target_fps=1.0, max_frames=16, min_frames=8)(num_frames, fps) == expected


def test_fps_sampler_needs_fps_and_sane_limits():
    with pytest.raises(ValueError, match="needs the video's fps"):
        build("fps")(100, None)
    with pytest.raises(ValueError, match="min_frames"):
        build("fps", max_frames=4, min_frames=8)


def test_chunk_aligned_counts_are_multiples_of_the_chunk():
    inner = {"name": "fps", "max_frames": 16, "min_frames": 8}
    up = build("chunk_aligned", sampler=inner, chunk_size=4)
    down = build("chunk_aligned", sampler=inner, chunk_size=4, rounding="down")
    # 10 s at 30 fps: the inner sampler gives 10 frames
    assert len(up(300, 30.0)) == 12 and len(down(300, 30.0)) == 8
    assert up(300, 30.0) == np.linspace(0, 270, 12, dtype=int).tolist()   # spread over the inner span
    assert down(300, 30.0) == [0, 30, 60, 90, 150, 180, 210, 270]          # inner[linspace(0, 9, 8, int)]
    for n in (3, 20, 95, 300, 900, 5000):
        assert len(up(n, 30.0)) % 4 == 0 and len(down(n, 30.0)) % 4 == 0
    assert up.max_frames == 16
    assert build("chunk_aligned", sampler={"name": "linspace", "num_frames": 16})(100, 30.0) == \
        build("linspace", num_frames=16)(100, 30.0)


@pytest.mark.parametrize("bad", [0, -3])
def test_empty_videos_are_refused(bad):
    with pytest.raises(ValueError, match="at least one frame"):
        build("linspace")(bad, 30.0)
