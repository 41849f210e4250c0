"""MVBench: 20 tasks, one JSON per task (``{video, question, candidates, answer, [start, end]}``), videos
under per-task folders; bounds only for the tasks the notebook flags."""
from __future__ import annotations

import os
from typing import Literal, Optional

from vlmkit.contracts import DataContract
from vlmkit.data.datasets.base import Policy, Record, VideoTextDataset, read_annotations
from vlmkit.data.datasets.multiple_choice import (MVBENCH_ANSWER_PREFIX, MVBENCH_SUFFIX, MVBENCH_SYSTEM,
                                                  mc_record)
from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime

# task -> (json file, video folder under media_root, uses start/end bounds); the MVBench notebook's data list.
# Episodic Reasoning's "videos" are folders of 3 fps jpg frames (read as frame folders).
MVBENCH_TASKS: dict[str, tuple[str, str, bool]] = {
    "action_sequence": ("action_sequence.json", "star/Charades_v1_480/", True),
    "action_prediction": ("action_prediction.json", "star/Charades_v1_480/", True),
    "action_antonym": ("action_antonym.json", "ssv2_video/", False),
    "fine_grained_action": ("fine_grained_action.json", "Moments_in_Time_Raw/videos/", False),
    "unexpected_action": ("unexpected_action.json", "FunQA_test/test/", False),
    "object_existence": ("object_existence.json", "clevrer/video_validation/", False),
    "object_interaction": ("object_interaction.json", "star/Charades_v1_480/", True),
    "object_shuffle": ("object_shuffle.json", "perception/videos/", False),
    "moving_direction": ("moving_direction.json", "clevrer/video_validation/", False),
    "action_localization": ("action_localization.json", "sta/sta_video/", True),
    "scene_transition": ("scene_transition.json", "scene_qa/video/", False),
    "action_count": ("action_count.json", "perception/videos/", False),
    "moving_count": ("moving_count.json", "clevrer/video_validation/", False),
    "moving_attribute": ("moving_attribute.json", "clevrer/video_validation/", False),
    "state_change": ("state_change.json", "perception/videos/", False),
    "fine_grained_pose": ("fine_grained_pose.json", "nturgbd/", False),
    "character_order": ("character_order.json", "perception/videos/", False),
    "egocentric_navigation": ("egocentric_navigation.json", "vlnqa/", False),
    "episodic_reasoning": ("episodic_reasoning.json", "tvqa/frames_fps3_hq/", True),
    "counterfactual_inference": ("counterfactual_inference.json", "clevrer/video_validation/", False),
}


@DATASETS.register("mvbench")
class MVBenchDataset(VideoTextDataset):
    """``ann_root``: the folder of task JSONs (``json/`` of the release); ``media_root``: the ``video/`` folder.
    ``tasks``: a subset of the 20 task names (all by default).  The task name is each sample's ``task_type``.
    ``use_bounds``: apply ``start``/``end`` for the flagged tasks, as the original notebook does (lmms-eval
    uses pre-cut segments instead: set false and point ``media_root`` at those)."""

    name = "mvbench"

    def __init__(self, ann_root: str, media_root: str = "", tasks: Optional[list[str]] = None,
                 use_bounds: bool = True, system_prompt: Optional[str] = MVBENCH_SYSTEM,
                 question_suffix: str = MVBENCH_SUFFIX, answer_prefix: str = MVBENCH_ANSWER_PREFIX, *,
                 contract: Runtime[DataContract], train: bool = False, on_bad_sample: Policy = "raise",
                 backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0, max_samples: Optional[int] = None,
                 bad_sample_dir: Optional[str] = None):
        unknown = sorted(set(tasks or ()) - set(MVBENCH_TASKS))
        if unknown:
            raise ConfigError("tasks", f"unknown MVBench task(s) {unknown}; accepted: {', '.join(MVBENCH_TASKS)}")
        self.ann_root, self.media_root, self.use_bounds = ann_root, media_root, use_bounds
        self.tasks = list(tasks or MVBENCH_TASKS)
        self.system_prompt, self.question_suffix, self.answer_prefix = system_prompt, question_suffix, answer_prefix
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def records(self) -> list[Record]:
        records = []
        for task in self.tasks:
            json_name, folder, bounded = MVBENCH_TASKS[task]
            path = os.path.join(self.ann_root, json_name)
            data = read_annotations(path)
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a list of questions, got {type(data).__name__}")
            for i, entry in enumerate(data):
                if not (bounded and self.use_bounds):
                    entry = {k: v for k, v in entry.items() if k not in ("start", "end")}
                records.append(mc_record(entry, f"{path} entry {i}", os.path.join(self.media_root, folder),
                                         self.system_prompt, self.question_suffix, self.answer_prefix,
                                         task_type=task, sample_id=f"{task}/{i}"))
                records[-1].meta["task_type"] = task
        return records
