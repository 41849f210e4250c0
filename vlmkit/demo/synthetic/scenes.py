"""Random scene specs: which shapes appear, where, when, and which one moves.

A scene has one object, or two objects of different colour *and* different shape (so "the red one" and "the
circle" each name exactly one object).  Object 1 appears at frame 0; in a two-object scene object 2 appears at a
frame drawn from ``[second_appear_min, second_appear_max]`` and exactly one of the two moves (a fair coin picks
which).  A single object always moves.  The moving object travels ``speed`` pixels per frame in one of the
directions, from the frame it appears to the last frame, and never leaves the frame; the static object is placed
where it never overlaps the moving object's path, so every pixel check and every attribute is unambiguous.

Everything is drawn from a ``numpy.random.Generator`` the caller seeds, so a spec is a pure function of its seed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# name -> RGB.  The defaults are six colours far apart in RGB *and* in luma, so they survive yuv420p chroma
# subsampling at 8 px; the others are there for users who want a different palette.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 80, 255),
    "yellow": (250, 230, 40),
    "purple": (170, 50, 230),
    "white": (255, 255, 255),
    "orange": (255, 140, 0),
    "cyan": (0, 230, 230),
    "pink": (255, 130, 200),
    "gray": (128, 128, 128),
}
DEFAULT_COLOURS = ("red", "green", "blue", "yellow", "purple", "white")
SHAPES = ("circle", "square", "triangle", "cross")  # masks live in render.py
# direction -> (dx, dy) in image coordinates (y grows downwards)
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass(frozen=True)
class ObjectSpec:
    colour: str
    shape: str
    appear: int                 # first frame the object is visible; it stays until the last frame
    x: int                      # top-left corner at frame ``appear``
    y: int
    direction: str | None    # None: the object stays still
    speed: int                  # pixels per frame (0 when static)

    @property
    def moving(self) -> bool:
        return self.direction is not None

    @property
    def description(self) -> str:
        """How questions and captions name the object: ``"red circle"``."""
        return f"{self.colour} {self.shape}"

    def position(self, frame: int) -> tuple[int, int] | None:
        """Top-left (x, y) at ``frame``, or None before the object appears."""
        if frame < self.appear:
            return None
        if self.direction is None:
            return self.x, self.y
        dx, dy = DIRECTIONS[self.direction]
        steps = (frame - self.appear) * self.speed
        return self.x + dx * steps, self.y + dy * steps


@dataclass(frozen=True)
class SceneSpec:
    num_frames: int
    frame_size: int
    object_size: int
    objects: tuple[ObjectSpec, ...]   # in order of appearance

    @property
    def mover(self) -> ObjectSpec:
        return next(o for o in self.objects if o.moving)

    def to_dict(self) -> dict:
        return {"num_frames": self.num_frames, "frame_size": self.frame_size, "object_size": self.object_size,
                "objects": [asdict(o) for o in self.objects]}

    @classmethod
    def from_dict(cls, data: dict) -> SceneSpec:
        return cls(data["num_frames"], data["frame_size"], data["object_size"],
                   tuple(ObjectSpec(**o) for o in data["objects"]))


class SceneSampler:
    """Draws :class:`SceneSpec` s; every knob of the scene distribution is a constructor argument."""

    def __init__(self, num_frames: int = 8, frame_size: int = 32, object_size: int = 8,
                 colours: tuple[str, ...] = DEFAULT_COLOURS, shapes: tuple[str, ...] = SHAPES,
                 directions: tuple[str, ...] = tuple(DIRECTIONS), min_speed: int = 2, max_speed: int = 3,
                 two_object_fraction: float = 0.5, second_appear_min: int = 2, second_appear_max: int = 4):
        self.num_frames, self.frame_size, self.object_size = num_frames, frame_size, object_size
        self.colours, self.shapes, self.directions = tuple(colours), tuple(shapes), tuple(directions)
        self.min_speed, self.max_speed = min_speed, max_speed
        self.two_object_fraction = two_object_fraction
        self.second_appear_min, self.second_appear_max = second_appear_min, second_appear_max
        self._validate()

    def _validate(self) -> None:
        _check_names("colours", self.colours, PALETTE)
        _check_names("shapes", self.shapes, SHAPES)
        _check_names("directions", self.directions, DIRECTIONS)
        if self.frame_size % 2:
            raise ValueError(f"frame_size must be even (yuv420p), got {self.frame_size}")
        if not 1 <= self.min_speed <= self.max_speed:
            raise ValueError(f"need 1 <= min_speed <= max_speed, got {self.min_speed}, {self.max_speed}")
        path = self.object_size + self.max_speed * (self.num_frames - 1)
        if path > self.frame_size:
            raise ValueError(f"an object of {self.object_size} px moving {self.max_speed} px/frame for "
                             f"{self.num_frames} frames covers {path} px > frame_size {self.frame_size}; "
                             "lower max_speed or object_size, or raise frame_size")
        if not 0.0 <= self.two_object_fraction <= 1.0:
            raise ValueError(f"two_object_fraction must be in [0, 1], got {self.two_object_fraction}")
        if self.two_object_fraction > 0:
            if not 1 <= self.second_appear_min <= self.second_appear_max <= self.num_frames - 2:
                raise ValueError(f"need 1 <= second_appear_min <= second_appear_max <= num_frames - 2 "
                                 f"= {self.num_frames - 2} (so motion is visible for 2+ frames), got "
                                 f"{self.second_appear_min}..{self.second_appear_max}")
            if len(self.colours) < 2 or len(self.shapes) < 2:
                raise ValueError("two-object scenes need at least 2 colours and 2 shapes")
            if self.frame_size < 3 * self.object_size + 2:   # a path through the middle leaves room on one side
                raise ValueError(f"two-object scenes need frame_size >= 3 * object_size + 2 = "
                                 f"{3 * self.object_size + 2}, got {self.frame_size}")

    def sample(self, rng: np.random.Generator) -> SceneSpec:
        two = rng.random() < self.two_object_fraction
        if not two:
            colour, shape = self._pick(rng, self.colours), self._pick(rng, self.shapes)
            objects = (self._moving_object(rng, colour, shape, appear=0),)
        else:
            colours = rng.choice(len(self.colours), 2, replace=False)
            shapes = rng.choice(len(self.shapes), 2, replace=False)
            appear2 = int(rng.integers(self.second_appear_min, self.second_appear_max + 1))
            first_moves = rng.random() < 0.5
            attrs = [(self.colours[c], self.shapes[s], a) for c, s, a in zip(colours, shapes, (0, appear2))]
            mover_attrs, static_attrs = (attrs[0], attrs[1]) if first_moves else (attrs[1], attrs[0])
            mover = self._moving_object(rng, *mover_attrs)
            static = self._static_object(rng, *static_attrs, avoid=mover)
            objects = (mover, static) if first_moves else (static, mover)
        return SceneSpec(self.num_frames, self.frame_size, self.object_size, objects)

    @staticmethod
    def _pick(rng: np.random.Generator, values: tuple[str, ...]) -> str:
        return values[int(rng.integers(len(values)))]

    def _moving_object(self, rng, colour: str, shape: str, appear: int) -> ObjectSpec:
        direction = self._pick(rng, self.directions)
        speed = int(rng.integers(self.min_speed, self.max_speed + 1))
        travel = speed * (self.num_frames - 1 - appear)
        free = self.frame_size - self.object_size           # largest top-left coordinate
        along = int(rng.integers(0, free - travel + 1))      # start so the whole path stays inside
        across = int(rng.integers(0, free + 1))
        dx, dy = DIRECTIONS[direction]
        if dx < 0 or dy < 0:
            along += travel
        x, y = (along, across) if dx else (across, along)
        return ObjectSpec(colour, shape, appear, x, y, direction, speed)

    def _static_object(self, rng, colour: str, shape: str, appear: int, avoid: ObjectSpec) -> ObjectSpec:
        """A still object placed uniformly among positions that keep a 1 px gap from ``avoid``'s whole path."""
        s, free = self.object_size, self.frame_size - self.object_size
        start, end = avoid.position(avoid.appear), avoid.position(self.num_frames - 1)
        x0, x1 = min(start[0], end[0]), max(start[0], end[0]) + s   # swept box [x0, x1) x [y0, y1)
        y0, y1 = min(start[1], end[1]), max(start[1], end[1]) + s
        xs, ys = np.meshgrid(np.arange(free + 1), np.arange(free + 1), indexing="xy")
        clear = (xs + s + 1 <= x0) | (xs >= x1 + 1) | (ys + s + 1 <= y0) | (ys >= y1 + 1)
        cand_y, cand_x = np.nonzero(clear)
        if len(cand_x) == 0:   # cannot happen with the checks in _validate, but never place an overlap silently
            raise ValueError(f"no room for a static object beside the path of {avoid}")
        k = int(rng.integers(len(cand_x)))
        return ObjectSpec(colour, shape, appear, int(cand_x[k]), int(cand_y[k]), None, 0)


def _check_names(what: str, names: tuple[str, ...], known) -> None:
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"{what}: unknown or empty {unknown or names}; accepted: {sorted(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: duplicate names in {list(names)}")
