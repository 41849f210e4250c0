"""The checks behind ``vlmkit data validate CFG`` (the command: ``vlmkit.data_validate_cmd``), sample by sample.

Per sample it checks, in order: the annotation itself, that the media file exists, that the conversation has
exactly one media placeholder, that the text fits the model's ``max_length`` once placeholders are expanded to
the visual tokens, and that the media decodes to usable frames.  The report counts faults per dataset and
kind, lists each faulty sample, and prints as a table.  Only the model's data contract (tokenizer, template, visual
token count, sampling), which each dataset holds, is used.  Feature-mode datasets (GEBC with ``features``) have
their feature files checked in place of media.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from vlmkit.errors import DataError
from vlmkit.protocols import Mixture, RecordDataset, RecordStream

KINDS = ("annotation", "missing_file", "placeholder_mismatch", "too_long", "text", "undecodable")


@dataclass
class DatasetReport:
    name: str
    samples: int = 0
    checked: int = 0
    faults: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    max_tokens: int = 0

    @property
    def bad(self) -> int:
        return sum(self.faults.values())


@dataclass
class DataReport:
    datasets: list[DatasetReport] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)  # {dataset, id, file, kind, reason}
    max_length: Optional[int] = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def table(self) -> str:
        header = ["dataset", "samples", "checked", *KINDS, "max tokens"]
        rows = [[d.name, d.samples, d.checked, *(d.faults[k] for k in KINDS), d.max_tokens] for d in self.datasets]
        widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
        lines = ["  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(row, widths)))
                 for row in [header, *rows]]
        limit = f"model max_length: {self.max_length}" if self.max_length else "model max_length: none"
        verdict = "no problems found" if self.ok else f"{len(self.problems)} faulty sample(s)"
        return "\n".join([*lines, limit, verdict])

    def to_dict(self) -> dict:
        return {"ok": self.ok, "max_length": self.max_length, "problems": self.problems,
                "datasets": [{"name": d.name, "samples": d.samples, "checked": d.checked, "faults": d.faults,
                              "max_tokens": d.max_tokens} for d in self.datasets]}


def classify(reason: str) -> str:
    text = reason.lower()
    if "not found" in text:
        return "missing_file"
    if "placeholder" in text:
        return "placeholder_mismatch"
    if "max_length" in text:
        return "too_long"
    return "undecodable"


def _count_placeholders(conversation: Sequence[dict], placeholders: Sequence[str]) -> int:
    count = 0
    for turn in conversation:
        role = str(turn.get("from", turn.get("role", ""))).lower()
        if role in ("human", "user", "system"):
            text = str(turn.get("value", turn.get("content", "")))
            count += sum(text.count(p) for p in placeholders)
    return count


def check_map_dataset(name: str, dataset: Any, report: DataReport, limit: Optional[int], decode: bool) -> None:
    entry = DatasetReport(name, samples=len(dataset))
    builder = dataset.builder
    placeholders = builder.contract.placeholders

    def fault(record, kind: str, reason: str) -> None:
        entry.faults[kind] += 1
        report.problems.append({"dataset": name, "id": record.id, "file": record.media, "kind": kind,
                                "reason": reason})

    features = getattr(dataset, "features", None)  # feature mode (GEBC): precomputed arrays, no media to decode
    feature_faults: dict[str, Optional[tuple[str, str, str]]] = {}  # per video: checked once for all its samples
    for record in dataset.items[:limit]:
        entry.checked += 1
        if record.problem:
            fault(record, "annotation", record.problem)
            continue
        if features:
            video = str(record.meta.get("video_name", record.id))
            if video not in feature_faults:
                feature_faults[video] = _feature_fault(dataset, features, video, decode)
            if feature_faults[video] is not None:
                kind, path, reason = feature_faults[video]
                entry.faults[kind] += 1
                report.problems.append({"dataset": name, "id": record.id, "file": path, "kind": kind,
                                        "reason": reason})
                continue
        elif not record.media or not (os.path.exists(record.media) or "://" in record.media):
            fault(record, "missing_file", f"{record.media}: file not found")
            continue
        found = _count_placeholders(record.conversation, placeholders)
        if found != 1:
            fault(record, "placeholder_mismatch", f"{found} media placeholders {list(placeholders)} for 1 media file")
            continue
        try:
            encoded = builder.encode(record)
        except DataError as err:
            fault(record, "too_long" if "max_length" in str(err) else "text", str(err))
            continue
        entry.max_tokens = max(entry.max_tokens, len(encoded.input_ids))
        if getattr(encoded, "truncated", 0):
            fault(record, "too_long", f"{encoded.truncated} answer tokens cut to fit max_length")
            continue
        if decode and not features:
            try:
                builder.media.decode(record.media, record.start, record.end, seed=0)
            except DataError as err:
                fault(record, "undecodable", str(err))
    report.datasets.append(entry)


def _feature_fault(dataset: Any, features: dict, video: str, decode: bool) -> Optional[tuple[str, str, str]]:
    """(kind, file, reason) of the first feature file of `video` that is missing (or, with decode, unreadable or
    of the wrong shape), or None when all are usable."""
    from vlmkit.data.datasets.gebc import FEATURE_SUFFIXES, load_feature

    for key, folder in features.items():
        stem = os.path.join(str(folder), video)
        path = next((stem + s for s in FEATURE_SUFFIXES if os.path.isfile(stem + s)), None)
        if path is None:
            return "missing_file", stem, f"{stem}{{{','.join(FEATURE_SUFFIXES)}}}: feature file not found " \
                                         f"(features.{key})"
        if decode:
            try:
                load_feature(str(folder), video, getattr(dataset, "allow_pickle", False))
            except DataError as err:
                return "undecodable", path, f"{err} (features.{key})"
    return None


def check_stream_dataset(name: str, dataset: Any, report: DataReport, limit: Optional[int]) -> None:
    """Read the stream with bad samples skipped; each skip is a fault."""
    entry = DatasetReport(name, samples=len(dataset))
    dataset.on_bad_sample = "skip"
    before = len(dataset.bad_samples())
    for sample in dataset:
        entry.checked += 1
        entry.max_tokens = max(entry.max_tokens, int(sample["input_ids"].shape[0]))
        if limit is not None and entry.checked >= limit:
            break
    for bad in dataset.bad_samples()[before:]:
        entry.checked += 1
        kind = classify(bad["reason"])
        entry.faults[kind] += 1
        report.problems.append({"dataset": name, "id": bad["id"], "file": bad["file"], "kind": kind,
                                "reason": bad["reason"]})
    report.datasets.append(entry)


def check_dataset(name: str, dataset: Any, report: DataReport, limit: Optional[int], decode: bool) -> None:
    if isinstance(dataset, Mixture):  # check each source
        for source_name, source in zip(dataset.names, dataset.sources):
            check_dataset(f"{name}.{source_name}", source, report, limit, decode)
    elif isinstance(dataset, RecordDataset):
        check_map_dataset(name, dataset, report, limit, decode)
    elif isinstance(dataset, RecordStream):
        check_stream_dataset(name, dataset, report, limit)
    else:
        raise DataError(f"datasets.{name}: {type(dataset).__name__} is not a vlmkit dataset that can be validated")
