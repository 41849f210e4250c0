"""Kinetics-GEBC (generic event boundary captioning): ``{youtube_id: [boundary, ...]}`` where a boundary has
``boundary_id``, ``timestamp``, ``prev_timestamp``, ``next_timestamp`` (seconds), ``label``, ``subject``,
``status_before``, ``status_after`` (test files have no captions).

Two input modes: decoded pixels (the default), or LLMVA-GEBC's precomputed features (``features`` set): per
video, one array file per batch key (``<folder>/<video>.npy``; the release's ``.pkl`` only with ``allow_pickle``,
since unpickling can run code: convert them with ``python -m vlmkit.tools.pkl_to_npy``) plus the boundary's
``reference_points`` = [timestamp / duration, (next_timestamp - prev_timestamp) / duration] with durations from
``video_info_path`` (``{video_id: seconds}``), the inputs of the ``gebc/*`` models.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch

from vlmkit.contracts import VIDEO_PLACEHOLDER, DataContract
from vlmkit.data.datasets.base import (Policy, Record, VideoTextDataset, find_media, fit_frame_count,
                                       read_annotations, require)
from vlmkit.data.datasets.video_qa import VIDEO_SUFFIXES
from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime
from vlmkit.tools.pkl_to_npy import read_pickled_array

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


REFERENCE_KEY = "reference_points"
FEATURE_SUFFIXES = (".npy", ".pkl")


def load_feature(folder: str, video: str, allow_pickle: bool = False) -> torch.Tensor:
    """The float array ``folder/<video>.npy`` (or ``.pkl``, LLMVA-GEBC's other features, when trusted) as a
    tensor.  A ``.pkl`` without ``allow_pickle`` is a ConfigError, not a bad sample: no policy may skip past it."""
    for suffix in FEATURE_SUFFIXES:
        path = os.path.join(folder, video + suffix)
        if os.path.isfile(path):
            break
    else:
        raise DataError(f"{os.path.join(folder, video)}{{{','.join(FEATURE_SUFFIXES)}}}: feature file not found")
    if path.endswith(".pkl"):
        if not allow_pickle:
            raise ConfigError("allow_pickle", f"{path}: a pickled feature file can run arbitrary code when read, so "
                                              f"it is refused. Convert the folder to .npy with `python -m "
                                              f"vlmkit.tools.pkl_to_npy {folder}` (it rebuilds numpy arrays only), "
                                              f"or set allow_pickle: true on this dataset if you trust the files")
        return _checked(read_pickled_array(Path(path), trust=True), path)
    try:
        array = np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read the feature array: {err}") from err
    return _checked(array, path)


def _checked(array: np.ndarray, path: str) -> torch.Tensor:
    if array.ndim < 2 or array.shape[0] == 0:
        raise DataError(f"{path}: expected a (T, [N,] D) feature array, got shape {array.shape}")
    return torch.from_numpy(array)


def reference_points(boundary: dict, duration: float, where: str) -> list[float]:
    """LLMVA-GEBC's boundary description: [timestamp / duration, (next - prev) / duration]."""
    if duration <= 0:
        raise DataError(f"{where}: video duration must be > 0, got {duration}")
    t = float(require(boundary, "timestamp", where))
    span = float(require(boundary, "next_timestamp", where)) - float(require(boundary, "prev_timestamp", where))
    return [t / duration, span / duration]


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
    instead of the whole video.  ``prompts`` overrides the default prompt per caption type (``{t}`` = time,
    ``{label}`` = the boundary's lower-cased label, as LLMVA-GEBC's "This video describes the {label}.").

    ``features`` (batch key -> folder of ``<video>.npy``, or ``.pkl`` with ``allow_pickle: true``) switches to precomputed features: nothing is
    decoded, each sample carries those arrays and ``reference_points``; ``video_info_path`` gives the durations.
    Keys in ``frame_feature_keys`` hold one row per frame and are fitted to the model's frame count (evenly
    repeated or thinned); the others keep their length (the model resizes them).  The batch then holds each
    key as a (B, ...) tensor when all samples agree in shape, else as a list of per-sample tensors."""

    name = "gebc"

    def __init__(self, ann_path: str, media_root: str = "", mode: Literal["per_type", "joint"] = "per_type",
                 clip: Literal["whole", "neighbours"] = "whole", prompts: Optional[dict[str, str]] = None,
                 video_template: str = "{video}", video_suffixes: list[str] = VIDEO_SUFFIXES,
                 features: Optional[dict[str, str]] = None, video_info_path: Optional[str] = None,
                 frame_feature_keys: list[str] = ("q_former_tokens",), allow_pickle: bool = False, *,
                 contract: Runtime[DataContract], train: bool = True, on_bad_sample: Policy = "raise",
                 backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0, max_samples: Optional[int] = None,
                 bad_sample_dir: Optional[str] = None):
        unknown = sorted(set(prompts or {}) - set(PROMPTS))
        if unknown:
            raise DataError(f"gebc: unknown prompt key(s) {unknown}; accepted: {', '.join(PROMPTS)}")
        self.ann_path, self.media_root, self.mode, self.clip = ann_path, media_root, mode, clip
        self.prompts = {**PROMPTS, **(prompts or {})}
        self.video_template, self.video_suffixes = video_template, list(video_suffixes)
        self.features = dict(features) if features else None
        self.frame_feature_keys = list(frame_feature_keys)
        self.allow_pickle = allow_pickle
        self.durations: Optional[dict[str, float]] = None
        if self.features is not None:
            self._check_feature_mode(contract, video_info_path)
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def _check_feature_mode(self, contract: DataContract, video_info_path: Optional[str]) -> None:
        if contract is not None and contract.preprocessing:
            raise ConfigError("features", "the model reads pixels (it has a pixel preprocessing), but feature mode "
                                          "gives none; drop 'features' or use a feature model (gebc/*)")
        wanted = set((contract.extra or {}).get("batch_keys", ())) if contract is not None else set()
        missing = sorted(wanted - set(self.features) - {REFERENCE_KEY})
        if missing:
            raise ConfigError("features", f"the model reads batch entries {missing} that 'features' does not name "
                                          f"(it names {sorted(self.features)})")
        if not video_info_path:
            raise ConfigError("video_info_path", "feature mode needs the video durations ({video_id: seconds}) "
                                                 "for the boundaries' reference_points")
        info = read_annotations(video_info_path)
        if not isinstance(info, dict):
            raise DataError(f"{video_info_path}: expected {{video_id: duration_seconds}}, got {type(info).__name__}")
        self.durations = {str(k): float(v) for k, v in info.items()}
        self.video_info_path = video_info_path

    def records(self) -> list[Record]:
        data = read_annotations(self.ann_path)
        if not isinstance(data, dict):
            raise DataError(f"{self.ann_path}: expected {{video_id: [boundaries]}}, got {type(data).__name__}")
        records = []
        for video, boundaries in data.items():
            media = (None if self.features is not None else
                     find_media(self.media_root, self.video_template.format(video=video), self.video_suffixes))
            for k, boundary in enumerate(boundaries):
                where = f"{self.ann_path} video {video} boundary {k}"
                records += self._boundary_records(boundary, media, video, where)
        return records

    def _boundary_records(self, boundary: dict, media: Optional[str], video: str, where: str) -> list[Record]:
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
        problem = None
        if self.features is not None:
            if video in self.durations:
                base[REFERENCE_KEY] = reference_points(boundary, self.durations[video], where)
            else:
                problem = f"video {video} has no duration in {self.video_info_path}"
        kinds = ["joint"] if self.mode == "joint" else list(CAPTION_TYPES)
        records = []
        for kind in kinds:
            truth = joint_caption(boundary) if kind == "joint" else str(boundary.get(kind, ""))
            question = self.prompts[kind].format(t=t, label=str(boundary.get("label", "")).lower())
            meta = {**base, "question": question, "caption_type": kind, "task_type": kind,
                    "answer": truth if has_captions else "", "references": [truth] if has_captions else []}
            sample_id = boundary_id if kind == "joint" else f"{boundary_id}/{kind}"
            records.append(Record(sample_id, media, [{"from": "human", "value": f"{VIDEO_PLACEHOLDER}\n{question}"},
                                                     {"from": "gpt", "value": truth or " "}], meta,
                                  start=start, end=end, problem=problem))
        return records

    # ------------------------------------------------------------------ feature mode
    def build_sample(self, record: Record, seed: int) -> dict:
        if self.features is None:
            return super().build_sample(record, seed)
        if record.problem:
            raise DataError(record.problem)
        encoded = self.builder.encode(record)
        video = record.meta["video_name"]
        inputs = {key: load_feature(folder, video, self.allow_pickle) for key, folder in self.features.items()}
        for key in self.frame_feature_keys:
            if key in inputs:
                inputs[key] = fit_frame_count(inputs[key], self.contract.num_frames)
        return {"input_ids": torch.tensor(encoded.input_ids, dtype=torch.long),
                "labels": torch.tensor(encoded.labels, dtype=torch.long), "pixel_values": [],
                "id": record.id, "meta": {"id": record.id, **record.meta}, "features": inputs}

    def collater(self, samples: Sequence[Optional[dict]]) -> Optional[dict]:
        batch = super().collater(samples)
        if batch is None or self.features is None:
            return batch
        kept = [s for s in samples if s is not None]
        for key in self.features:
            batch[key] = stack_or_list([s["features"][key] for s in kept])
        batch[REFERENCE_KEY] = torch.tensor([s["meta"][REFERENCE_KEY] for s in kept], dtype=torch.float32)
        return batch


def stack_or_list(tensors: list[torch.Tensor]) -> Any:
    """One (B, ...) tensor when every sample has the same shape, else the list (variable-length features)."""
    if len({tuple(t.shape) for t in tensors}) == 1:
        return torch.stack(tensors)
    return tensors
