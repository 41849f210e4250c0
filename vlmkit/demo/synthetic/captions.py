"""Deterministic captions that name every object, its motion and the order of appearance.

The first caption is the canonical one (used for training, stage-1 shards and stage-2 caption requests); the
second is a paraphrase added to the evaluation references so caption metrics see two references.

    one object:                 "a red circle moves left."
    two objects, first moves:   "a red circle moves left. then a blue square appears and stays still."
    two objects, second moves:  "a red circle stays still. then a blue square appears and moves up."
"""
from __future__ import annotations

from vlmkit.demo.synthetic.scenes import ObjectSpec, SceneSpec


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _named(obj: ObjectSpec) -> str:
    return f"{_article(obj.colour)} {obj.description}"


def _motion(obj: ObjectSpec) -> str:
    return f"moves {obj.direction}" if obj.moving else "stays still"


def _motion_paraphrase(obj: ObjectSpec) -> str:
    return f"is moving {obj.direction}" if obj.moving else "does not move"


def caption(spec: SceneSpec) -> str:
    """The canonical caption."""
    first = spec.objects[0]
    text = f"{_named(first)} {_motion(first)}."
    if len(spec.objects) == 2:
        second = spec.objects[1]
        text += f" then {_named(second)} appears and {_motion(second)}."
    return text


def binding_caption(spec: SceneSpec, first: int) -> str:
    """Shape before colour, objects listed from ``first`` on (not in order of appearance):
    "the square is blue and stays still. the circle is red and moves left."

    Why: the canonical caption trains colour -> shape ("a red ..." -> "circle") and could be written from the
    order of appearance alone; with the objects in random order, the first colour here can only be read by
    finding the named shape in the video, the skill "What colour is the cross?" asks for."""
    objects = spec.objects[first:] + spec.objects[:first]
    return " ".join(f"the {obj.shape} is {obj.colour} and {_motion(obj)}." for obj in objects)


def captions(spec: SceneSpec) -> list[str]:
    """Reference captions: the canonical one, then a paraphrase."""
    first = spec.objects[0]
    paraphrase = f"the {first.description} {_motion_paraphrase(first)}."
    if len(spec.objects) == 2:
        second = spec.objects[1]
        paraphrase += f" after that the {second.description} appears and {_motion_paraphrase(second)}."
    return [caption(spec), paraphrase]
