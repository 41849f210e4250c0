"""Video-MME (reference: benchmark_formats.md 5.2): 2,700 four-choice questions over 900 videos, short (<2 min),
medium (4-15 min) and long (30-60 min), with or without subtitles.

Annotation forms read (``ann_path``):
- the rows of lmms-eval's ``lmms-eval/Video-MME`` (``videomme/test-*.parquet``, or the same rows as a JSON list /
  JSON lines): ``{video_id, duration, domain, sub_category, videoID, question_id, task_type, question, options
  ["A. ...", ...], answer "C"}``;
- the official per-video template (``output_test_template.json``): ``[{video_id, duration, domain, sub_category,
  questions: [{question_id, task_type, question, options, answer}]}]``.  Its ``video_id`` is the release's
  three-digit number; the files are named by the YouTube id, so a ``videoID`` key is used when present (the
  reference does not list one in the template: name the files by ``video_id`` otherwise).
Videos are ``<media_root>/<videoID>.mp4`` (``.MP4``/``.mkv`` too, as lmms-eval looks), subtitles
``<subtitle_root>/<videoID>.srt`` (744 of the 900 videos have one).

Prompt: the official one (Video-MME README): [``This video's subtitles are listed below:`` + the lines] +
"Select the best answer ... based on the video[ and the subtitles]. Respond with only the letter (A, B, C, or D)
of the correct option." + question + the options one per line + "The best answer is:".  With subtitles only the
lines shown at the sampled frames are given, as lmms-eval does: a cue is kept when a sampled frame index ``i``
has ``int(start*fps) <= i < int(end*fps)``; the text is the ``<font ...>`` span of the cue (plain text when the
cue has none -- lmms-eval would drop such a cue; every Video-MME srt uses the font tag).  The frames are the ones
the model's sampler picks (lmms-eval's ``np.linspace(0, N-1, frames)`` is the ``fps_upbound``/``linspace``
samplers' rule), computed when the sample is read.  Score with ``mc_accuracy`` rule ``videomme`` (or
``lmms_mcq``), breakdown by duration, domain and sub_category, task types as groups.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Literal, Optional

from vlmkit.contracts import VIDEO_PLACEHOLDER, DataContract
from vlmkit.data.datasets.base import (Policy, Record, VideoTextDataset, find_media, read_annotations, require,
                                       resolve_media)
from vlmkit.data.video import frame_range
from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime

DURATIONS = ("short", "medium", "long")
VIDEO_SUFFIXES = (".mp4", ".MP4", ".mkv")
INSTRUCTION = ("Select the best answer to the following multiple-choice question based on the video. Respond with "
               "only the letter (A, B, C, or D) of the correct option.")
INSTRUCTION_SUBTITLES = ("Select the best answer to the following multiple-choice question based on the video and "
                         "the subtitles. Respond with only the letter (A, B, C, or D) of the correct option.")
SUBTITLE_HEADER = "This video's subtitles are listed below:"
NO_SUBTITLES = "No subtitles available"  # lmms-eval's text for a video without an srt
POST_PROMPT = "The best answer is:"
_FONT = re.compile(r'<font color="white" size=".72c">(.*?)</font>')
_OPTION = re.compile(r"^([A-Z])\.\s?(.*)$", re.DOTALL)


# ---------------------------------------------------------------------------------------------- subtitles
def _seconds(stamp: str, where: str) -> float:
    try:
        hours, minutes, rest = stamp.strip().split(":")
        secs, millis = rest.split(",")
        return int(hours) * 3600 + int(minutes) * 60 + int(secs) + int(millis) / 1000
    except ValueError as err:
        raise DataError(f"{where}: bad srt time {stamp!r} (expected HH:MM:SS,mmm)") from err


def read_srt(path: str) -> list[tuple[float, float, str]]:
    """(start s, end s, text) per cue, in file order; the text is the cue's font span, else its plain lines."""
    try:
        text = open(path, encoding="utf-8-sig").read().replace("\r\n", "\n")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the subtitle file ({err})") from err
    cues = []
    for n, block in enumerate(b for b in text.split("\n\n") if b.strip()):
        lines = block.strip("\n").split("\n")
        where = f"{path} cue {n + 1}"
        if len(lines) < 3 or " --> " not in lines[1]:
            raise DataError(f"{where}: expected 'index', 'start --> end' and text lines, got {lines[:3]}")
        start, end = (_seconds(part, where) for part in lines[1].split(" --> ", 1))
        body = " ".join(lines[2:])
        font = _FONT.findall(body)
        cues.append((start, end, font[0] if font else body.strip()))
    return cues


def subtitles_at(cues: list[tuple[float, float, str]], indices: list[int], fps: float) -> list[str]:
    """The cues shown at any of the frame ``indices`` (lmms-eval: ``int(t*fps)`` frame spans, end excluded)."""
    shown = [text for start, end, text in cues
             if any(int(start * fps) <= i < int(end * fps) for i in indices)]
    return [text for text in shown if text]


def options_of(raw: list, where: str) -> list[str]:
    """Option texts from Video-MME's ``["A. text", "B. text", ...]`` (letters checked, in order)."""
    if not isinstance(raw, (list, tuple)) or len(raw) < 2:
        raise DataError(f"{where}: 'options' must be a list of 'A. ...' strings, got {raw!r}")
    texts = []
    for i, option in enumerate(raw):
        match = _OPTION.match(str(option).strip())
        if not match or match.group(1) != chr(ord("A") + i):
            raise DataError(f"{where}: option {i} is {option!r}; expected it to start with "
                            f"'{chr(ord('A') + i)}. '")
        texts.append(match.group(2).strip())
    return texts


def read_rows(path: str) -> list[dict]:
    """Question rows from the lmms-eval parquet/JSON rows or the official per-video template."""
    if path.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError as err:
            raise DataError(f"{path}: reading parquet needs pyarrow (pip install pyarrow), or give the rows as "
                            f"JSON") from err
        data = pq.read_table(path).to_pylist()
    else:
        data = read_annotations(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of questions or videos, got {type(data).__name__}")
    rows = []
    for i, entry in enumerate(data):
        if isinstance(entry, dict) and "questions" in entry:  # official template: one entry per video
            video = {k: v for k, v in entry.items() if k != "questions"}
            rows += [{**video, **q, "_where": f"{path} video {i} question {j}"}
                     for j, q in enumerate(entry["questions"])]
        else:
            rows.append({**entry, "_where": f"{path} entry {i}"} if isinstance(entry, dict) else entry)
    return rows


@DATASETS.register("videomme", aliases=["video_mme"])
class VideoMMEDataset(VideoTextDataset):
    """``ann_path``: the question rows (see the module doc); ``media_root``: the videos (``data/`` of the
    release); ``durations``: a subset of short/medium/long (all by default); ``subtitles``: give the subtitle
    lines of the sampled frames (``subtitle_root``: the ``subtitle/`` folder)."""

    name = "videomme"

    def __init__(self, ann_path: str, media_root: str = "", subtitles: bool = False,
                 subtitle_root: Optional[str] = None, durations: Optional[list[str]] = None,
                 post_prompt: str = POST_PROMPT, *, contract: Runtime[DataContract], train: bool = False,
                 on_bad_sample: Policy = "raise", backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0,
                 max_samples: Optional[int] = None, bad_sample_dir: Optional[str] = None):
        unknown = sorted(set(durations or ()) - set(DURATIONS))
        if unknown:
            raise ConfigError("durations", f"unknown Video-MME duration(s) {unknown}; accepted: {', '.join(DURATIONS)}")
        if subtitles and not subtitle_root:
            raise ConfigError("subtitle_root", "subtitles: true needs subtitle_root, the folder of <videoID>.srt")
        self.ann_path, self.media_root = ann_path, media_root
        self.subtitles, self.subtitle_root = subtitles, subtitle_root
        self.durations = list(durations or DURATIONS)
        self.post_prompt = post_prompt
        self.srt: dict[str, Optional[str]] = {}  # sample id -> its srt file (None: the video has none)
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def records(self) -> list[Record]:
        records = []
        for row in read_rows(self.ann_path):
            where = row.pop("_where", self.ann_path) if isinstance(row, dict) else self.ann_path
            duration = require(row, "duration", where)
            if duration not in DURATIONS:
                raise DataError(f"{where}: duration {duration!r} is not one of {', '.join(DURATIONS)}")
            if duration not in self.durations:
                continue
            video = str(row.get("videoID") or require(row, "video_id", where))
            question = str(require(row, "question", where)).strip()
            raw_options = require(row, "options", where)
            options = options_of(list(raw_options), where)
            answer = str(require(row, "answer", where)).strip()
            if answer not in "ABCDEFGHIJ"[:len(options)] or len(answer) != 1:
                raise DataError(f"{where}: answer {answer!r} is not one of the option letters "
                                f"{'ABCDEFGHIJ'[:len(options)]}")
            letter = answer
            sample_id = str(require(row, "question_id", where))
            listed = "\n".join(str(o).strip() for o in raw_options)
            body = f"{question}\n{listed}\n{self.post_prompt}"
            prompt = f"{INSTRUCTION_SUBTITLES if self.subtitles else INSTRUCTION}\n{body}"
            meta = {"question": question, "options": options, "answer": letter, "answer_letter": letter,
                    "answer_text": options[ord(letter) - ord("A")], "task_type": str(require(row, "task_type", where)),
                    "duration": duration, "domain": str(require(row, "domain", where)),
                    "sub_category": str(require(row, "sub_category", where)), "video_id": video}
            media = find_media(self.media_root, video, VIDEO_SUFFIXES)
            records.append(Record(sample_id, media, [{"from": "human", "value": f"{VIDEO_PLACEHOLDER}\n{prompt}"},
                                                     {"from": "gpt", "value": letter}], meta))
            if self.subtitles:
                srt = resolve_media(self.subtitle_root, f"{video}.srt")
                self.srt[sample_id] = srt if os.path.isfile(srt) else None
        return records

    def subtitle_text(self, record: Record, seed: Optional[int] = None) -> str:
        """The subtitle lines at the frames the sampler picks from this record's video (the same call as
        ``VideoReader.sample`` makes, so the same indices)."""
        srt = self.srt.get(record.id)
        if srt is None:
            return NO_SUBTITLES
        info = self.media.reader.info(record.media)
        first, last = frame_range(info.num_frames, info.fps)
        indices = [first + i for i in self.media.sampler(last - first + 1, info.fps, rng=seed)]
        return "\n".join(subtitles_at(read_srt(srt), indices, info.fps))

    def build_sample(self, record: Record, seed: int) -> dict:
        if self.subtitles:
            lines = self.subtitle_text(record, seed if self.train else None)
            human, *rest = record.conversation
            text = human["value"].replace(f"{VIDEO_PLACEHOLDER}\n", f"{VIDEO_PLACEHOLDER}\n{SUBTITLE_HEADER}\n{lines}\n", 1)
            record = dataclasses.replace(record, conversation=[{**human, "value": text}, *rest],
                                         meta={**record.meta, "subtitles": lines})
        return self.builder.build(record, seed)
