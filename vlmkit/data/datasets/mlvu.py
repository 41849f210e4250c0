"""MLVU dev multiple choice (reference: benchmark_formats.md 5.3): seven task files
``<ann_root>/<n>_<task>.json`` of ``{video, duration, question, candidates, answer (text), question_type}``, videos
under ``<media_root>/<n>_<task>/``.  One dataset for all seven, each sample's ``task_type`` its task key, so
``mc_accuracy`` with ``overall: macro`` gives M-Avg (the mean of the per-task accuracies) directly.
"""
from __future__ import annotations

import os
from typing import Literal, Optional

from vlmkit.contracts import DataContract
from vlmkit.data.datasets.base import Policy, Record, VideoTextDataset, read_annotations
from vlmkit.data.datasets.multiple_choice import mc_record
from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime

# task key (lmms-eval's mlvu_dev task_type) -> file stem and video folder of the MLVU release
MLVU_MC_TASKS = {"plotQA": "1_plotQA", "needle": "2_needle", "ego": "3_ego", "count": "4_count",
                 "order": "5_order", "anomaly_reco": "6_anomaly_reco", "topic_reasoning": "7_topic_reasoning"}
# MLVU's choice_bench prompt (VideoChat2 style); the reference gives the pre-fill as "Best Option: (".
MLVU_SYSTEM = ("Carefully watch this video and pay attention to every detail. Based on your observations, select "
               "the best option that accurately addresses the question.\n")
MLVU_SUFFIX = "\nOnly give the best option."
MLVU_ANSWER_PREFIX = "Best Option: ("


def task_files(ann_root: str, tasks: Optional[list[str]], table: dict[str, str],
               what: str) -> list[tuple[str, str, str]]:
    """(task, annotation file, video folder stem) for the chosen tasks, checked against ``table``."""
    chosen = list(tasks) if tasks else list(table)
    unknown = sorted(set(chosen) - set(table))
    if unknown:
        raise ConfigError("tasks", f"unknown MLVU {what} task(s) {unknown}; accepted: {', '.join(table)}")
    return [(task, os.path.join(ann_root, f"{table[task]}.json"), table[task]) for task in chosen]


@DATASETS.register("mlvu")
class MLVUDataset(VideoTextDataset):
    """``ann_root``: the release's ``json/`` folder; ``media_root``: its ``video/`` folder.  ``tasks``: a subset
    of the seven keys (all by default).  Prompted as MLVU's choice_bench: system prompt, ``Question: q\\n
    Options:\\n(A) ...`` + "Only give the best option.", answer pre-filled; score with ``rule: mlvu``."""

    name = "mlvu"

    def __init__(self, ann_root: str, media_root: str = "", tasks: Optional[list[str]] = None,
                 system_prompt: Optional[str] = MLVU_SYSTEM, question_suffix: str = MLVU_SUFFIX,
                 answer_prefix: str = MLVU_ANSWER_PREFIX, *, contract: Runtime[DataContract], train: bool = False,
                 on_bad_sample: Policy = "raise", backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0,
                 max_samples: Optional[int] = None, bad_sample_dir: Optional[str] = None):
        self.files = task_files(ann_root, tasks, MLVU_MC_TASKS, "multiple-choice")
        self.media_root = media_root
        self.system_prompt, self.question_suffix, self.answer_prefix = system_prompt, question_suffix, answer_prefix
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def records(self) -> list[Record]:
        records = []
        for task, path, folder in self.files:
            data = read_annotations(path)
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a list of questions, got {type(data).__name__}")
            for i, entry in enumerate(data):
                record = mc_record(entry, f"{path} entry {i}", os.path.join(self.media_root, folder),
                                   self.system_prompt, self.question_suffix, self.answer_prefix,
                                   sample_id=f"{task}/{i:05d}")
                record.meta["task_type"] = task
                records.append(record)
        return records
