"""NExT-QA multiple choice (doc-doc/NExT-QA; not in benchmark_formats.md, the upstream layout is followed):
``val.csv`` / ``test.csv`` with columns ``video, frame_count, width, height, question, answer (index 0-4), qid,
type, a0..a4``; videos ``<media_root>/<video>.mp4`` (lmms-eval's ``NExTVideo`` layout) or, with ``map_path``
(the release's ``map_vid_vidorID.json``: video id -> ``folder/vidorID``), ``<media_root>/<folder>/<vidorID>.mp4``.

Question types: CW (why), CH (how) = causal; TN (before/after; TP is merged into TN, as ``eval_mc.py`` does),
TC (when) = temporal; DC (count), DL (location), DO (other) = descriptive.  Each sample's ``task_type`` is its
type and ``type_group`` its group, so ``mc_accuracy`` (``group_by: task_type``, ``breakdown: [type_group]``,
``overall: micro``) gives eval_mc.py's figures: per type, Acc_C / Acc_T / Acc_D (micro within the group) and Acc
over all questions.  Sample ids are eval_mc.py's ``<video>_<qid>``.

Prompt as lmms-eval's ``nextqa_mc_test``: the question, ``A. a0`` .. ``E. a4``, then the post prompt (lmms-eval's
usual "\\nAnswer with the option's letter from the given choices directly.").  lmms-eval reads the letter with
MMMU's parser, guessing at random when none is named; vlmkit counts those wrong: use rule ``lmms_mcq``.
"""
from __future__ import annotations

import csv
import json
import os
from typing import Literal, Optional

from vlmkit.contracts import DataContract
from vlmkit.data.datasets.base import Policy, Record, VideoTextDataset, find_media
from vlmkit.data.datasets.lettered_mc import POST_PROMPT, answer_index, dot_prompt, mc_sample
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime

NUM_OPTIONS = 5
COLUMNS = ("video", "question", "answer", "qid", "type", *(f"a{i}" for i in range(NUM_OPTIONS)))
TYPE_GROUPS = {"CW": "causal", "CH": "causal", "TN": "temporal", "TC": "temporal",
               "DC": "descriptive", "DL": "descriptive", "DO": "descriptive"}


def read_csv(path: str) -> list[dict]:
    if not os.path.isfile(path):
        raise DataError(f"{path}: annotation file not found")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} (has {reader.fieldnames})")
        return list(reader)


@DATASETS.register("nextqa", aliases=["nextqa_mc"])
class NExTQADataset(VideoTextDataset):
    """``ann_path``: the MC csv; ``media_root``: the videos; ``map_path``: map_vid_vidorID.json (optional)."""

    name = "nextqa"

    def __init__(self, ann_path: str, media_root: str = "", map_path: Optional[str] = None, pre_prompt: str = "",
                 post_prompt: str = POST_PROMPT, *, contract: Runtime[DataContract], train: bool = False,
                 on_bad_sample: Policy = "raise", backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0,
                 max_samples: Optional[int] = None, bad_sample_dir: Optional[str] = None):
        self.ann_path, self.media_root, self.map_path = ann_path, media_root, map_path
        self.pre_prompt, self.post_prompt = pre_prompt, post_prompt
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def video_paths(self) -> Optional[dict]:
        if not self.map_path:
            return None
        try:
            mapping = json.load(open(self.map_path, encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"{self.map_path}: cannot read the video map ({err})") from err
        if not isinstance(mapping, dict):
            raise DataError(f"{self.map_path}: expected {{video id: 'folder/vidorID'}}, got {type(mapping).__name__}")
        return mapping

    def records(self) -> list[Record]:
        mapping = self.video_paths()
        records = []
        for i, row in enumerate(read_csv(self.ann_path)):
            where = f"{self.ann_path} row {i + 2}"  # line number, after the header
            qtype = "TN" if row["type"] == "TP" else row["type"]
            if qtype not in TYPE_GROUPS:
                raise DataError(f"{where}: question type {row['type']!r} is not one of "
                                f"{', '.join([*TYPE_GROUPS, 'TP'])}")
            video = row["video"].strip()
            if mapping is not None and video not in mapping:
                raise DataError(f"{where}: video {video!r} is not in {self.map_path}")
            stem = mapping[video] if mapping is not None else video
            question = row["question"].strip()
            options = [row[f"a{k}"].strip() for k in range(NUM_OPTIONS)]
            index = answer_index(row["answer"].strip(), NUM_OPTIONS, f"{where} (column answer)")
            records.append(mc_sample(f"{video}_{row['qid'].strip()}", find_media(self.media_root, stem, (".mp4",)),
                                     question, options, index,
                                     dot_prompt(question, options, self.pre_prompt, self.post_prompt),
                                     task_type=qtype, type_group=TYPE_GROUPS[qtype]))
        return records
