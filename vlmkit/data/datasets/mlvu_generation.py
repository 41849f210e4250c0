"""MLVU dev generation tasks (reference: benchmark_formats.md 5.3), scored by the ``mlvu_generation`` metric:
``8_sub_scene.json`` (Sub-Scene Captioning, entries ``{video, duration, question, answer, scoring_points}``) and
``9_summary.json`` (Video Summarization, ``{video, duration, question, answer}``) under ``ann_root``, videos
under ``media_root/8_sub_scene/`` and ``media_root/9_summary/``.  ``task_type`` is "sub_scene" or "summary".
"""
from __future__ import annotations

import os
from typing import Literal, Optional

from vlmkit.contracts import VIDEO_PLACEHOLDER, DataContract
from vlmkit.data.datasets.base import Policy, Record, VideoTextDataset, read_annotations, require, resolve_media
from vlmkit.data.datasets.mlvu import task_files
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime

MLVU_GENERATION_TASKS = {"sub_scene": "8_sub_scene", "summary": "9_summary"}


def scoring_points_of(entry: dict, where: str) -> list[str]:
    points = require(entry, "scoring_points", where)
    if isinstance(points, str):
        points = [points]
    if not isinstance(points, list) or not points or not all(isinstance(p, str) and p.strip() for p in points):
        raise DataError(f"{where}: scoring_points must be a non-empty list of strings, got {points!r}")
    return points


@DATASETS.register("mlvu_generation")
class MLVUGenerationDataset(VideoTextDataset):
    """``ann_root``: the release's ``json/`` folder; ``media_root``: its ``video/`` folder; ``tasks``: "sub_scene"
    and/or "summary" (both by default).  Prompt ``<video>\\n{question}{post_prompt}``; meta carries
    ``question``, ``answer``, ``task_type`` and, for sub_scene, ``scoring_points`` (required there)."""

    name = "mlvu_generation"

    def __init__(self, ann_root: str, media_root: str = "", tasks: Optional[list[str]] = None,
                 system_prompt: Optional[str] = None, post_prompt: str = "", *, contract: Runtime[DataContract],
                 train: bool = False, on_bad_sample: Policy = "raise",
                 backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0, max_samples: Optional[int] = None,
                 bad_sample_dir: Optional[str] = None):
        self.files = task_files(ann_root, tasks, MLVU_GENERATION_TASKS, "generation")
        self.media_root, self.system_prompt, self.post_prompt = media_root, system_prompt, post_prompt
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def records(self) -> list[Record]:
        records = []
        for task, path, folder in self.files:
            data = read_annotations(path)
            if not isinstance(data, list) or not data:
                raise DataError(f"{path}: expected a non-empty list of {task} questions")
            for i, entry in enumerate(data):
                where = f"{path} entry {i}"
                question, answer = str(require(entry, "question", where)), str(require(entry, "answer", where))
                meta = {"question": question, "answer": answer, "task_type": task}
                if task == "sub_scene":
                    meta["scoring_points"] = scoring_points_of(entry, where)
                turns = [{"from": "system", "value": self.system_prompt}] if self.system_prompt else []
                turns += [{"from": "human", "value": f"{VIDEO_PLACEHOLDER}\n{question}{self.post_prompt}"},
                          {"from": "gpt", "value": answer}]
                media = resolve_media(os.path.join(self.media_root, folder), str(require(entry, "video", where)))
                records.append(Record(f"{task}/{i:05d}", media, turns, meta))
        return records
