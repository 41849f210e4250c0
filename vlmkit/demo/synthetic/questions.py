"""Questions with known answers: four-option multiple choice (five task types) and open questions.

Multiple-choice task types and how their options are built (``num_options`` = 4 by default):

==========  ===================================================  ==============================================
task_type   question (1 object / 2 objects)                      candidates
==========  ===================================================  ==============================================
colour      "What colour is the shape?" / "...the circle?"       answer + 3 others drawn uniformly from the colours
shape       "What shape is it?" / "What shape is the red one?"   answer + 3 others drawn uniformly from the shapes
direction   "Which way does the moving shape move?"              answer + 3 others drawn uniformly from directions
order       "Which shape appears first?"   (2 objects only)      4 object descriptions ("red circle"), see below
moving      "Which shape moves?"           (2 objects only)      same construction as ``order``
==========  ===================================================  ==============================================

In two-object scenes a colour or a shape question is asked about each object (the other object is named by its
shape or colour), so attribute binding is tested on both; candidates are shuffled uniformly.

Chance levels (each checked empirically in tests/data/test_synthetic_questions.py):

* random guesser: 1/4 for every type (four options, answer position uniform).
* prior-only guesser (sees question and candidates, not the video, and knows the answer statistics of the
  training set): 1/4 for every type.  Why: each answer value is uniform over its pool and independent of the
  question text, and distractors are a uniform draw from the rest of the pool, so given the candidate set every
  member is equally likely to be the answer.  For ``order``/``moving`` the four candidates are built so that
  the two present objects cannot be told from the two absent ones: all four have different colours *and* all
  different shapes (the two absent ones take two unused colours and two unused shapes, paired at random), and
  since a scene's two objects are a uniform ordered pair of (colour, shape) with distinct colours and shapes,
  every ordered pair inside a candidate set is equally likely to be (answer, other object).
* partial observers, reported so results can be read honestly (not chance, but floors a model may reach
  without the skill a type is meant to test):

  - sees which objects are in the video but not time (a single frame, or frames as a bag): ``order`` and
    ``moving`` 1/2 (two of the four candidates are present), ``direction`` 1/4.
  - sees the colours and shapes present but does not bind them (two-object scenes only): ``shape`` 1/2 (with 4
    shapes and 4 options the other object's shape is always a candidate), ``colour`` 1 - 3/5 * 1/2 = 0.7 with 6
    colours (the other object's colour is a candidate with probability 3/5).  One-object scenes need no binding.

Open questions (answers are single words or an object description, no articles): colour / shape of the moving
shape, direction of motion, number of shapes ("one" / "two"), and which shape appears first (two-object scenes).
Majority-answer baselines: colour 1/6, shape 1/4, direction 1/4, count = share of the larger scene kind,
order 1/(colours x shapes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlmkit.demo.synthetic.scenes import DEFAULT_COLOURS, DIRECTIONS, SHAPES, ObjectSpec, SceneSpec

MC_TYPES = ("colour", "shape", "direction", "order", "moving")
OPEN_TYPES = ("colour", "shape", "direction", "count", "order")
TWO_OBJECT_ONLY = ("order", "moving")
_COUNT_WORDS = {1: "one", 2: "two"}


@dataclass(frozen=True)
class MCQuestion:
    task_type: str
    question: str
    candidates: tuple[str, ...]
    answer: str

    @property
    def answer_index(self) -> int:
        return self.candidates.index(self.answer)


@dataclass(frozen=True)
class OpenQuestion:
    task_type: str
    question: str
    answer: str


class QuestionMaker:
    """Builds questions about a :class:`SceneSpec`; option pools are the scene distribution's values."""

    def __init__(self, colours: tuple[str, ...] = DEFAULT_COLOURS, shapes: tuple[str, ...] = SHAPES,
                 directions: tuple[str, ...] = tuple(DIRECTIONS), num_options: int = 4):
        self.colours, self.shapes, self.directions = tuple(colours), tuple(shapes), tuple(directions)
        self.num_options = num_options
        smallest = min(len(self.colours), len(self.shapes), len(self.directions))
        if not 2 <= num_options <= smallest:
            raise ValueError(f"num_options must be in 2..{smallest} (the smallest of the colour, shape and "
                             f"direction pools), got {num_options}")

    # ------------------------------------------------------------------ multiple choice
    def mc_types(self, spec: SceneSpec) -> tuple[str, ...]:
        if len(spec.objects) == 1:
            return tuple(t for t in MC_TYPES if t not in TWO_OBJECT_ONLY)
        return MC_TYPES

    def all_mc(self, spec: SceneSpec, rng: np.random.Generator, types: tuple[str, ...] = MC_TYPES
               ) -> list[MCQuestion]:
        """Every applicable type in ``types``; colour and shape once per object."""
        questions = []
        for task_type in self.mc_types(spec):
            if task_type not in types:
                continue
            targets = range(len(spec.objects)) if task_type in ("colour", "shape") else (None,)
            questions.extend(self.mc(spec, task_type, rng, target) for target in targets)
        return questions

    def mc(self, spec: SceneSpec, task_type: str, rng: np.random.Generator, target: int | None = None
           ) -> MCQuestion:
        """One question; ``target`` picks the object of a colour/shape question (random when None)."""
        if task_type not in self.mc_types(spec):
            raise ValueError(f"task_type {task_type!r} does not apply to a {len(spec.objects)}-object scene; "
                             f"accepted: {list(self.mc_types(spec))}")
        objects = spec.objects
        two = len(objects) == 2
        if task_type in ("colour", "shape"):
            index = int(rng.integers(len(objects))) if target is None else target
            obj = objects[index]
            if task_type == "colour":
                text = f"What colour is the {obj.shape}?" if two else "What colour is the shape?"
                return self._attribute(task_type, text, obj.colour, self.colours, rng)
            text = f"What shape is the {obj.colour} one?" if two else "What shape is it?"
            return self._attribute(task_type, text, obj.shape, self.shapes, rng)
        if task_type == "direction":
            return self._attribute(task_type, "Which way does the moving shape move?", spec.mover.direction,
                                   self.directions, rng)
        answer = objects[0] if task_type == "order" else spec.mover
        other = objects[1] if answer is objects[0] else objects[0]
        text = "Which shape appears first?" if task_type == "order" else "Which shape moves?"
        return MCQuestion(task_type, text, self._object_candidates(answer, other, rng), answer.description)

    def _attribute(self, task_type: str, text: str, answer: str, pool: tuple[str, ...], rng) -> MCQuestion:
        others = [v for v in pool if v != answer]
        picked = [others[i] for i in rng.choice(len(others), self.num_options - 1, replace=False)]
        return MCQuestion(task_type, text, self._shuffled([answer, *picked], rng), answer)

    def _object_candidates(self, answer: ObjectSpec, other: ObjectSpec, rng) -> tuple[str, ...]:
        k = self.num_options - 2
        free_colours = [c for c in self.colours if c not in (answer.colour, other.colour)]
        free_shapes = [s for s in self.shapes if s not in (answer.shape, other.shape)]
        colours = [free_colours[i] for i in rng.choice(len(free_colours), k, replace=False)]
        shapes = [free_shapes[i] for i in rng.choice(len(free_shapes), k, replace=False)]
        absent = [f"{c} {s}" for c, s in zip(colours, shapes)]
        return self._shuffled([answer.description, other.description, *absent], rng)

    @staticmethod
    def _shuffled(values: list[str], rng) -> tuple[str, ...]:
        return tuple(values[i] for i in rng.permutation(len(values)))

    # ------------------------------------------------------------------ open questions
    def open_types(self, spec: SceneSpec) -> tuple[str, ...]:
        if len(spec.objects) == 1:
            return tuple(t for t in OPEN_TYPES if t not in TWO_OBJECT_ONLY)
        return OPEN_TYPES

    def open(self, spec: SceneSpec, task_type: str) -> OpenQuestion:
        if task_type not in self.open_types(spec):
            raise ValueError(f"open task_type {task_type!r} does not apply to a {len(spec.objects)}-object "
                             f"scene; accepted: {list(self.open_types(spec))}")
        mover = spec.mover
        if task_type == "colour":
            return OpenQuestion(task_type, "What colour is the moving shape?", mover.colour)
        if task_type == "shape":
            return OpenQuestion(task_type, "What shape is moving?", mover.shape)
        if task_type == "direction":
            return OpenQuestion(task_type, "Which way does the moving shape move?", mover.direction)
        if task_type == "count":
            return OpenQuestion(task_type, "How many shapes are there?", _COUNT_WORDS[len(spec.objects)])
        return OpenQuestion(task_type, "Which shape appears first?", spec.objects[0].description)

    def random_open(self, spec: SceneSpec, rng: np.random.Generator, count: int = 1) -> list[OpenQuestion]:
        """``count`` open questions of different applicable types (fewer if fewer apply)."""
        types = self.open_types(spec)
        picked = rng.choice(len(types), min(count, len(types)), replace=False)
        return [self.open(spec, types[i]) for i in sorted(picked)]
