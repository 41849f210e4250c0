"""Synthetic videos of moving coloured shapes, written as real mp4 files with answers known by construction.

Scenes (scenes.py): ``num_frames`` (8) frames of ``frame_size`` (32) px square on a black background, one or two
``object_size`` (8) px shapes out of 6 colours x 4 shapes (circle, square, triangle, cross).  The moving shape goes
left / right / up / down at 2-3 px per frame and stays inside the frame.  In two-object videos (half of them) the
shapes differ in colour and shape, the second appears at frame 2-4, and exactly one of the two moves.  Every
parameter is an argument of :class:`SyntheticVideoGenerator` and a flag of ``python -m vlmkit.demo.synthetic``.
Question design and chance levels per type: see questions.py.

Command line (generates on first run; a second run with the same parameters finds the files and does nothing)::

    python -m vlmkit.demo.synthetic --out DIR --train 30000 --test 2000 --seed 0 [--workers 2] [--overwrite]

Python: ``ensure_synthetic_dataset(out, train, test, seed, workers=2, **generator_params)`` -> manifest dict.

Files under ``--out`` (paths inside the JSON files are relative to ``--out``; ids are ``{split}_{index:06d}``):

``videos/{train,test}/{id}.mp4``
    H.264 (libx264, yuv420p, crf 18), ``fps`` 8, ``num_frames`` frames of ``frame_size`` x ``frame_size``.

``shards/train-000000.tar`` ... (stage 1, caption pretraining)
    webdataset tar shards of ``shard_size`` (1000) training videos each; a sample is ``{id}.mp4`` (the same bytes
    as the file under videos/) and ``{id}.json`` = ``{"caption": "a red circle moves left."}``.  The manifest's
    ``shard_pattern`` gives the brace form, e.g. ``shards/train-{000000..000029}.tar``.

``train_conversations.json`` (stage 2, instruction tuning; LLaVA style)
    A list of single-turn conversations, several per training video (no turn can leak another's answer)::

        {"id": "train_000007-mc0", "video": "videos/train/train_000007.mp4", "task_type": "mc_colour",
         "conversations": [{"from": "human", "value": "<video>\\nQuestion: What colour is the shape?\\nOptions:\\n
                                                       (A) blue\\n(B) red\\n(C) white\\n(D) green\\n
                                                       Only give the best option."},
                           {"from": "gpt", "value": "(B) red"}]}

    Per video: one multiple-choice entry per applicable type in ``mc_types`` (colour and shape once per object),
    ``train_open_per_video`` open questions (``task_type`` ``open_colour`` ..., answer a word such as ``"red"``),
    and with probability ``caption_request_fraction`` a caption request (``caption_prompt`` -> the canonical
    caption, ``task_type`` ``caption``).  The multiple-choice prompt is VideoChat2's ``Question: {q}\\nOptions:\\n
    (A) ...`` (``vlmkit.mc_format.format_question``; with ``mc_question_last`` the options come first and
    the question last, as in the CPU demo) plus ``mc_suffix`` on a new line (none when empty); the answer is
    ``mc_answer_format`` filled in: ``"({letter}) {option}"`` by default, ``"{option}"`` in the CPU demo.
    ``SyntheticVideoGenerator.mc_prompt`` builds the same prompt for evaluation. ``question_mark`` false drops
    the trailing "?" of every question, in training and test files alike (the CPU demo: its question's last
    word is then the token right before the answer).

``test_mc.json`` (MVBench form; one entry per question, several per test video)
    ``{"id", "video", "question", "candidates": [4 strings], "answer": <the correct candidate's text>,
    "task_type": "colour" | "shape" | "direction" | "order" | "moving"}``.  ``question`` is the bare question.

``test_open_qa.json``
    ``{"id", "video", "question", "answer", "task_type"}`` with ``test_open_per_video`` questions per test video.

``test_captions.json``
    ``{"id", "video", "captions": [canonical, paraphrase]}``, one per test video.

``test_scenes.json``
    ``{"id", "video", "scene": SceneSpec.to_dict()}`` per test video: every object's colour, shape, appearance
    frame, position, direction and speed, for breaking results down (e.g. one- vs two-object videos).

``manifest.json`` (written last; its presence means the run completed)
    ``{"params": {"format_version", "seed", "train", "test", "generator": {every constructor argument}},
    "counts": {...}, "shards": [...], "shard_pattern", "seconds", "videos_per_second"}``.  Skip / regenerate /
    error rules: see writer.py.
"""
from __future__ import annotations

from vlmkit.demo.synthetic.generator import SyntheticVideo, SyntheticVideoGenerator
from vlmkit.demo.synthetic.questions import MC_TYPES, OPEN_TYPES, MCQuestion, OpenQuestion, QuestionMaker
from vlmkit.demo.synthetic.scenes import ObjectSpec, SceneSampler, SceneSpec
from vlmkit.demo.synthetic.writer import generate_dataset

__all__ = ["MC_TYPES", "OPEN_TYPES", "MCQuestion", "ObjectSpec", "OpenQuestion", "QuestionMaker", "SceneSampler",
           "SceneSpec", "SyntheticVideo", "SyntheticVideoGenerator", "ensure_synthetic_dataset", "generate_dataset"]


def ensure_synthetic_dataset(out, train: int, test: int, seed: int = 0, workers: int = 2, overwrite: bool = False,
                             progress: bool = False, **generator_params) -> dict:
    """Generate the dataset under ``out`` unless an identical one is there; returns the manifest."""
    generator = SyntheticVideoGenerator(**generator_params)
    return generate_dataset(out, generator, train, test, seed, workers=workers, overwrite=overwrite,
                            progress=progress)
