"""Scene specs and rendering: constraints of the design hold, frames show each object where the spec says."""
from __future__ import annotations

import numpy as np
import pytest

from vlmkit.demo.synthetic.render import render, shape_mask
from vlmkit.demo.synthetic.scenes import PALETTE, SceneSampler

SAMPLER = SceneSampler()


def _specs(count: int, seed: int = 0, sampler: SceneSampler = SAMPLER):
    rng = np.random.default_rng(seed)
    return [sampler.sample(rng) for _ in range(count)]


def test_same_seed_same_specs_and_different_seed_different_specs():
    assert _specs(50, seed=3) == _specs(50, seed=3)
    assert _specs(50, seed=3) != _specs(50, seed=4)


def test_design_constraints_hold_for_many_scenes():
    specs = _specs(600)
    two = [s for s in specs if len(s.objects) == 2]
    assert 0.4 < len(two) / len(specs) < 0.6
    for spec in specs:
        assert sum(o.moving for o in spec.objects) == 1, "exactly one object moves"
        assert spec.objects[0].appear == 0
        for obj in spec.objects:
            for t in range(obj.appear, spec.num_frames):
                x, y = obj.position(t)
                assert 0 <= x <= 32 - 8 and 0 <= y <= 32 - 8, f"{obj} leaves the frame at {t}"
            if obj.moving:
                assert obj.direction in ("left", "right", "up", "down") and 2 <= obj.speed <= 3
    for spec in two:
        first, second = spec.objects
        assert first.colour != second.colour and first.shape != second.shape
        assert 2 <= second.appear <= 4
    movers = [s.objects.index(s.mover) for s in two]
    assert 0.35 < np.mean(movers) < 0.65, "either object may be the one that moves"


def test_rendered_frames_show_each_object_at_its_spec_position():
    for spec in _specs(60, seed=1):
        frames = render(spec)
        assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
        expected = np.zeros_like(frames)
        for obj in spec.objects:
            mask = shape_mask(obj.shape, 8)
            for t in range(spec.num_frames):
                position = obj.position(t)
                if position is None:
                    continue
                x, y = position
                patch = frames[t, y:y + 8, x:x + 8]
                assert (patch[mask] == PALETTE[obj.colour]).all(), f"{obj} not drawn at frame {t}"
                expected[t, y:y + 8, x:x + 8][mask] = PALETTE[obj.colour]
        # nothing else is drawn: in particular a late object is absent before it appears, and objects never
        # overlap (an overlap would overwrite one colour with the other above)
        np.testing.assert_array_equal(frames, expected)


def test_late_object_is_absent_before_it_appears():
    spec = next(s for s in _specs(50, seed=2) if len(s.objects) == 2)
    late = spec.objects[1]
    frames = render(spec)
    colour = np.array(PALETTE[late.colour])
    assert not (frames[:late.appear] == colour).all(-1).any()
    assert (frames[late.appear:] == colour).all(-1).any(axis=(1, 2)).all()


def test_moving_object_moves_in_its_direction_and_static_one_stays():
    for spec in _specs(40, seed=5):
        for obj in spec.objects:
            mask_positions = []
            frames = render(spec)
            colour = np.array(PALETTE[obj.colour])
            for t in range(obj.appear, spec.num_frames):
                ys, xs = np.nonzero((frames[t] == colour).all(-1))
                mask_positions.append((xs.mean(), ys.mean()))
            dx = mask_positions[-1][0] - mask_positions[0][0]
            dy = mask_positions[-1][1] - mask_positions[0][1]
            if not obj.moving:
                assert (dx, dy) == (0, 0)
            else:
                expected = {"left": (dx < 0 and dy == 0), "right": (dx > 0 and dy == 0),
                            "up": (dy < 0 and dx == 0), "down": (dy > 0 and dx == 0)}
                assert expected[obj.direction], f"{obj.direction}: moved by ({dx}, {dy})"


def test_shape_masks_are_distinct_at_8_px():
    masks = {name: shape_mask(name, 8) for name in ("circle", "square", "triangle", "cross")}
    names = list(masks)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert (masks[a] != masks[b]).sum() >= 10, f"{a} and {b} differ in too few pixels"


@pytest.mark.parametrize("kwargs, message", [
    ({"max_speed": 4}, "frame_size"),
    ({"colours": ("red", "mauve")}, "mauve"),
    ({"shapes": ("circle", "circle")}, "duplicate"),
    ({"frame_size": 33}, "even"),
    ({"second_appear_max": 7}, "second_appear"),
    ({"frame_size": 24, "max_speed": 2}, "3 \\* object_size"),
])
def test_invalid_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SceneSampler(**kwargs)


def test_parameters_change_the_scene_distribution():
    sampler = SceneSampler(num_frames=6, frame_size=48, object_size=12, colours=("red", "blue"),
                           shapes=("circle", "cross"), directions=("left",), two_object_fraction=1.0,
                           second_appear_min=2, second_appear_max=2, min_speed=4, max_speed=4)
    for spec in _specs(30, sampler=sampler):
        assert (spec.num_frames, spec.frame_size, spec.object_size) == (6, 48, 12)
        assert len(spec.objects) == 2 and spec.objects[1].appear == 2 and spec.mover.direction == "left"
        assert render(spec).shape == (6, 48, 48, 3)
