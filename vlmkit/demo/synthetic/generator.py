"""One synthetic video and all its annotations, as a pure function of (generator parameters, seed, split, index).

Each video draws from its own random streams ``default_rng([seed, split, index, stream])`` (stream 0: the
scene, 1: questions), so the result does not depend on worker scheduling or on how many videos are asked for,
and changing a question parameter leaves the scenes unchanged.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

import numpy as np

from vlmkit.contracts import VIDEO_PLACEHOLDER
from vlmkit.demo.synthetic.captions import binding_caption, captions
from vlmkit.demo.synthetic.encode import encode_mp4
from vlmkit.demo.synthetic.questions import MC_TYPES, MCQuestion, OpenQuestion, QuestionMaker
from vlmkit.demo.synthetic.render import render
from vlmkit.demo.synthetic.scenes import DEFAULT_COLOURS, DIRECTIONS, SHAPES, SceneSampler, SceneSpec
from vlmkit.mc_format import format_question, option_letters

SPLITS = {"train": 0, "test": 1}


@dataclass
class SyntheticVideo:
    """Everything known about one generated video (frames are rendered on demand)."""
    video_id: str
    split: str
    spec: SceneSpec
    mc: list[MCQuestion]
    open: list[OpenQuestion]
    captions: list[str]
    caption_request: bool        # training: also ask for the caption in stage 2
    turn_order: tuple[int, ...] = ()   # training: a shuffle of the stage-2 turns, for multi-turn conversations
    pretraining_caption: str = ""      # training: the stage-1 shard's caption (the canonical one by default)

    @property
    def caption(self) -> str:
        return self.captions[0]

    @property
    def video_path(self) -> str:
        """Path relative to the output directory."""
        return f"videos/{self.split}/{self.video_id}.mp4"


class SyntheticVideoGenerator:
    """Scene, rendering, question, prompt and encoding parameters; ``python -m vlmkit.demo.synthetic`` exposes
    each one as a ``--flag`` (underscores become dashes, tuples are comma-separated)."""

    def __init__(self, num_frames: int = 8, frame_size: int = 32, object_size: int = 8,
                 colours: tuple[str, ...] = DEFAULT_COLOURS, shapes: tuple[str, ...] = SHAPES,
                 directions: tuple[str, ...] = tuple(DIRECTIONS), min_speed: int = 2, max_speed: int = 3,
                 two_object_fraction: float = 0.5, train_two_object_fraction: float | None = None,
                 second_appear_min: int = 2, second_appear_max: int = 4,
                 background: tuple[int, ...] = (0, 0, 0), num_options: int = 4,
                 mc_types: tuple[str, ...] = MC_TYPES, attributes_for_each_object: bool = True,
                 train_open_per_video: int = 1, test_open_per_video: int = 1,
                 caption_request_fraction: float = 0.25, binding_caption_fraction: float = 0.0,
                 questions_per_conversation: int = 1,
                 separate_revealing_turns: bool = False, video_token: str = VIDEO_PLACEHOLDER,
                 mc_suffix: str = "Only give the best option.", mc_answer_format: str = "({letter}) {option}",
                 mc_question_last: bool = False, question_mark: bool = True,
                 caption_prompt: str = "Describe what happens in the video.",
                 fps: int = 8, crf: int = 18, preset: str = "veryfast", shard_size: int = 1000):
        arguments = dict(locals())   # the JSON-able record of every parameter, for manifest.json
        self.params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in arguments.items() if k != "self"}
        scene_args = (num_frames, frame_size, object_size, colours, shapes, directions, min_speed, max_speed)
        self.scenes = SceneSampler(*scene_args, two_object_fraction, second_appear_min, second_appear_max)
        # training scenes may hold more two-object scenes than the test set (whose mix defines the benchmark)
        self.train_scenes = self.scenes if train_two_object_fraction is None else SceneSampler(
            *scene_args, train_two_object_fraction, second_appear_min, second_appear_max)
        self.questions = QuestionMaker(colours, shapes, directions, num_options)
        unknown = [t for t in mc_types if t not in MC_TYPES]
        if unknown or not mc_types:
            raise ValueError(f"mc_types: unknown or empty {unknown or list(mc_types)}; accepted: {list(MC_TYPES)}")
        if len(background) != 3 or not all(0 <= v <= 255 for v in background):
            raise ValueError(f"background must be three values in 0..255, got {background}")
        for name, value in (("caption_request_fraction", caption_request_fraction),
                            ("binding_caption_fraction", binding_caption_fraction)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if questions_per_conversation < 1:
            raise ValueError(f"questions_per_conversation must be >= 1, got {questions_per_conversation}")
        if "{option}" not in mc_answer_format:
            raise ValueError(f"mc_answer_format must name {{option}} (and may name {{letter}}), got "
                             f"{mc_answer_format!r}; e.g. '({{letter}}) {{option}}' (VideoChat2) or '{{option}}'")
        if min(train_open_per_video, test_open_per_video) < 0 or shard_size < 1 or fps < 1:
            raise ValueError("train_open_per_video / test_open_per_video must be >= 0, shard_size and fps >= 1")
        self.mc_types, self.background = tuple(mc_types), tuple(background)
        self.attributes_for_each_object = attributes_for_each_object
        self.open_per_video = {"train": train_open_per_video, "test": test_open_per_video}
        self.caption_request_fraction = caption_request_fraction
        self.binding_caption_fraction = binding_caption_fraction
        self.questions_per_conversation = questions_per_conversation
        self.separate_revealing_turns = separate_revealing_turns
        self.video_token, self.mc_suffix, self.caption_prompt = video_token, mc_suffix, caption_prompt
        self.mc_answer_format, self.mc_question_last = mc_answer_format, mc_question_last
        self.question_mark = question_mark
        self.fps, self.crf, self.preset, self.shard_size = fps, crf, preset, shard_size

    # ------------------------------------------------------------------ one video
    def sample(self, split: str, index: int, seed: int) -> SyntheticVideo:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        scene_rng, question_rng = (np.random.default_rng([seed, SPLITS[split], index, s]) for s in (0, 1))
        spec = (self.train_scenes if split == "train" else self.scenes).sample(scene_rng)
        if self.attributes_for_each_object:
            mc = self.questions.all_mc(spec, question_rng, self.mc_types)
        else:
            mc = [self.questions.mc(spec, t, question_rng) for t in self.questions.mc_types(spec)
                  if t in self.mc_types]
        opens = self.questions.random_open(spec, question_rng, self.open_per_video[split])
        if not self.question_mark:
            mc = [replace(q, question=q.question.rstrip("?")) for q in mc]
            opens = [replace(q, question=q.question.rstrip("?")) for q in opens]
        wants_caption = bool(question_rng.random() < self.caption_request_fraction)
        # drawn last, so the questions above do not depend on it
        order = tuple(int(i) for i in question_rng.permutation(len(mc) + len(opens) + wants_caption))
        references = captions(spec)
        pretraining = references[0]
        if self.binding_caption_fraction:  # its own stream: the draws above stay as they were without it
            caption_rng = np.random.default_rng([seed, SPLITS[split], index, 2])
            if caption_rng.random() < self.binding_caption_fraction:
                pretraining = binding_caption(spec, int(caption_rng.integers(len(spec.objects))))
        return SyntheticVideo(f"{split}_{index:06d}", split, spec, mc, opens, references, wants_caption, order,
                              pretraining)

    def frames(self, video: SyntheticVideo) -> np.ndarray:
        return render(video.spec, self.background)

    def encode(self, video: SyntheticVideo) -> bytes:
        return encode_mp4(self.frames(video), self.fps, self.crf, self.preset)

    # ------------------------------------------------------------------ annotation records
    def mc_prompt(self, question: str, candidates: list[str] | tuple[str, ...]) -> str:
        """The stage-2 multiple-choice prompt (after the video token): VideoChat2's ``Question: ...\\nOptions:
        \\n(A) ...`` (``Options: ...\\nQuestion: ...`` with ``mc_question_last``) plus ``mc_suffix`` on its own
        line."""
        prompt = format_question(question, list(candidates), question_last=self.mc_question_last)
        return prompt + (f"\n{self.mc_suffix}" if self.mc_suffix else "")

    def mc_answer(self, question: MCQuestion) -> str:
        """The stage-2 target, ``mc_answer_format`` filled in: ``"(B) red"`` by default (VideoChat2's ground-truth
        form); ``"red"`` (``{option}``) answers with the option text alone, which a model too small to map
        letters to options can still learn, and under teacher forcing no letter gives the answer away."""
        letter = option_letters(len(question.candidates))[question.answer_index]
        return self.mc_answer_format.format(letter=letter, option=question.candidates[question.answer_index])

    def conversations(self, video: SyntheticVideo) -> list[dict]:
        """Stage-2 entries for one training video.

        ``questions_per_conversation`` 1: one single-turn conversation per question (no turn can see another's
        answer). N > 1: the video's turns, shuffled, in multi-turn conversations of up to N questions (LLaVA's
        form; the video is decoded and encoded once for N answers, and later turns may read earlier answers).
        ``separate_revealing_turns``: no turn follows, in its conversation, turns whose words hold every word of
        its answer (see :func:`group_turns`), so that no answer can be copied from the text before it."""
        # (id, type, prompt, target, answer, question without options)
        turns = [(f"mc{k}", f"mc_{q.task_type}", self.mc_prompt(q.question, q.candidates), self.mc_answer(q),
                  q.answer, q.question) for k, q in enumerate(video.mc)]
        turns += [(f"open{k}", f"open_{q.task_type}", q.question, q.answer, q.answer, q.question)
                  for k, q in enumerate(video.open)]
        if video.caption_request:
            turns.append(("caption", "caption", self.caption_prompt, video.caption, video.caption, ""))
        size = self.questions_per_conversation
        if size > 1:
            turns = [turns[i] for i in video.turn_order]
        if self.separate_revealing_turns and size > 1:
            groups = group_turns(turns, size)
        else:
            groups = [turns[start:start + size] for start in range(0, len(turns), size)]
        entries = []
        for group in groups:
            messages = []
            for number, (_, _, prompt, answer, _, _) in enumerate(group):
                head = f"{self.video_token}\n" if number == 0 else ""
                messages += [{"from": "human", "value": head + prompt}, {"from": "gpt", "value": answer}]
            suffix = "-".join(t[0] for t in group)
            task_type = group[0][1] if len(group) == 1 else "+".join(t[1] for t in group)
            entries.append({"id": f"{video.video_id}-{suffix}", "video": video.video_path, "task_type": task_type,
                            "conversations": messages})
        return entries

    @staticmethod
    def test_records(video: SyntheticVideo) -> dict[str, list[dict]]:
        """Evaluation entries for one test video, keyed by output file."""
        mc = [{"id": f"{video.video_id}-mc{k}", "video": video.video_path, "question": q.question,
               "candidates": list(q.candidates), "answer": q.answer, "task_type": q.task_type}
              for k, q in enumerate(video.mc)]
        open_qa = [{"id": f"{video.video_id}-open{k}", "video": video.video_path, "question": q.question,
                    "answer": q.answer, "task_type": q.task_type} for k, q in enumerate(video.open)]
        caps = [{"id": video.video_id, "video": video.video_path, "captions": list(video.captions)}]
        scene = [{"id": video.video_id, "video": video.video_path, "scene": video.spec.to_dict()}]
        return {"test_mc.json": mc, "test_open_qa.json": open_qa, "test_captions.json": caps,
                "test_scenes.json": scene}

    @staticmethod
    def shard_sample(video: SyntheticVideo, mp4: bytes) -> dict:
        """Stage-1 webdataset sample: ``{key}.mp4`` and ``{key}.json`` = ``{"caption": ...}``."""
        caption = video.pretraining_caption or video.caption
        return {"__key__": video.video_id, "mp4": mp4, "json": json.dumps({"caption": caption}).encode()}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def group_turns(turns: list[tuple], size: int) -> list[list[tuple]]:
    """Turns ``(id, type, prompt, target, answer, question)`` in conversations of up to ``size``, in the given order,
    so that no turn's answer words all occur in the question (without its options) or answer of a turn before it
    in its conversation. Why: with shuffled multi-turn conversations a third of the two-object colour / shape
    questions ("What shape is the red one?" after "What colour is the cross?" -> "red") and half of the order /
    moving questions (after the caption, or "What colour is the moving shape?") could be answered by copying
    earlier text, so those examples taught copying, not seeing -- and evaluation asks each question alone.
    Each turn goes to the first conversation with room that does not reveal it (a new one when none); caption
    requests, which reveal everything, are placed last."""
    groups: list[list[tuple]] = []
    known: list[set[str]] = []
    ordered = [t for t in turns if t[1] != "caption"] + [t for t in turns if t[1] == "caption"]
    for turn in ordered:
        answer = _words(turn[4])
        for group, words in zip(groups, known):
            if len(group) < size and not answer <= words:
                break
        else:
            group, words = [], set()
            groups.append(group)
            known.append(words)
        group.append(turn)
        words |= answer | _words(turn[5])
    return groups
