"""Kinetics-GEBC (generic event boundary captioning): ``{youtube_id: [boundary, ...]}`` where a boundary has
``boundary_id``, ``timestamp``, ``prev_timestamp``, ``next_timestamp`` (seconds), ``label``, ``subject``,
``status_before``, ``status_after`` (test files have no captions)."""
from __future__ import annotations

from typing import Literal, Optional

from vlmkit.contracts import DataContract
from vlmkit.data.datasets.base import Policy, Record, VideoTextDataset, find_media, read_annotations, require
from vlmkit.data.datasets.video_qa import VIDEO_SUFFIXES
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime

CAPTION_TYPES = ("subject", "status_before", "status_after")
PROMPTS = {
    "subject": "This video has an event boundary at {t:.2f} seconds. Who or what is the subject of the change "
               "at that boundary?",
    "status_before": "This video has an event boundary at {t:.2f} seconds. Describe the status of the subject "
                     "before the boundary.",
    "status_after": "This video has an event boundary at {t:.2f} seconds. Describe the status of the subject "
                    "after the boundary.",
    "joint": "This video has an event boundary at {t:.2f} seconds. Describe the subject, its status before the "
             "boundary and its status after it, as: Subject: ... //Status_Before: ... //Status_After: ...",
}


def joint_caption(boundary: dict) -> str:
    """GEB+'s caption string ``Subject: s //Status_Before: b //Status_After: a``."""
    return (f"Subject: {boundary.get('subject', '')} //Status_Before: {boundary.get('status_before', '')} "
            f"//Status_After: {boundary.get('status_after', '')}")


@DATASETS.register("gebc", aliases=["kinetics_gebc"])
class GEBCDataset(VideoTextDataset):
    """``mode: per_type`` (LLMVA-GEBC): each boundary gives three samples, one per caption type, with ids
    ``<boundary_id>/<type>`` and meta ``boundary_id``, ``caption_type``, ``timestamp``, ``references``.
    ``mode: joint``: one sample per boundary whose answer is the GEB+ caption string (the ``gebc`` metric's
    input form).  ``clip: neighbours`` samples frames between ``prev_timestamp`` and ``next_timestamp``
    instead of the whole video.  ``prompts`` overrides the default prompt per caption type (``{t}`` = time)."""

    name = "gebc"

    def __init__(self, ann_path: str, media_root: str = "", mode: Literal["per_type", "joint"] = "per_type",
                 clip: Literal["whole", "neighbours"] = "whole", prompts: Optional[dict[str, str]] = None,
                 video_template: str = "{video}", video_suffixes: list[str] = VIDEO_SUFFIXES, *,
                 contract: Runtime[DataContract], train: bool = True, on_bad_sample: Policy = "raise",
                 backend: Literal["decord", "pyav"] = "decord", seed: int = 0, max_samples: Optional[int] = None,
                 bad_sample_dir: Optional[str] = None):
        unknown = sorted(set(prompts or {}) - set(PROMPTS))
        if unknown:
            raise DataError(f"gebc: unknown prompt key(s) {unknown}; accepted: {', '.join(PROMPTS)}")
        self.ann_path, self.media_root, self.mode, self.clip = ann_path, media_root, mode, clip
        self.prompts = {**PROMPTS, **(prompts or {})}
        self.video_template, self.video_suffixes = video_template, list(video_suffixes)
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def records(self) -> list[Record]:
        data = read_annotations(self.ann_path)
        if not isinstance(data, dict):
            raise DataError(f"{self.ann_path}: expected {{video_id: [boundaries]}}, got {type(data).__name__}")
        records = []
        for video, boundaries in data.items():
            media = find_media(self.media_root, self.video_template.format(video=video), self.video_suffixes)
            for k, boundary in enumerate(boundaries):
                where = f"{self.ann_path} video {video} boundary {k}"
                records += self._boundary_records(boundary, media, video, where)
        return records

    def _boundary_records(self, boundary: dict, media: str, video: str, where: str) -> list[Record]:
        boundary_id = str(boundary.get("boundary_id", f"{video}_{where.rsplit(' ', 1)[-1]}"))
        t = float(require(boundary, "timestamp", where))
        start = end = None
        if self.clip == "neighbours":
            start, end = float(boundary.get("prev_timestamp", 0.0)), boundary.get("next_timestamp")
            end = float(end) if end is not None else None
        has_captions = all(key in boundary for key in CAPTION_TYPES)
        if self.train and not has_captions:
            raise DataError(f"{where}: training needs {', '.join(CAPTION_TYPES)} (test files have no captions)")
        base = {"boundary_id": boundary_id, "timestamp": t, "label": boundary.get("label", ""), "video_name": video}
        kinds = ["joint"] if self.mode == "joint" else list(CAPTION_TYPES)
        records = []
        for kind in kinds:
            truth = joint_caption(boundary) if kind == "joint" else str(boundary.get(kind, ""))
            question = self.prompts[kind].format(t=t)
            meta = {**base, "question": question, "caption_type": kind, "task_type": kind,
                    "answer": truth if has_captions else "", "references": [truth] if has_captions else []}
            sample_id = boundary_id if kind == "joint" else f"{boundary_id}/{kind}"
            records.append(Record(sample_id, media, [{"from": "human", "value": f"<video>\n{question}"},
                                                     {"from": "gpt", "value": truth or " "}], meta,
                                  start=start, end=end))
        return records
