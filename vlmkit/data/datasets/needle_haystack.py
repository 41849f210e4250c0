"""Needle-in-a-haystack questions: multiple-choice entries in MVBench form whose videos already hold the needle
spliced into a haystack, each naming its grid cell: ``[{id, video, question, candidates, answer,
haystack_frames, needle_depth}]`` (``python -m vlmkit.demo.tiny_eval_data`` writes such a set).  The cell
fields go into every sample's meta, where the ``needle`` task lays the accuracy out on its grid."""
from __future__ import annotations

from vlmkit.data.datasets.base import Record, read_annotations, require
from vlmkit.data.datasets.multiple_choice import MultipleChoiceDataset
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS

CELL_FIELDS = ("haystack_frames", "needle_depth")


@DATASETS.register("needle_haystack", aliases=["niah_mc"])
class NeedleHaystackDataset(MultipleChoiceDataset):
    """``multiple_choice`` plus the required per-entry ``haystack_frames`` (int) and ``needle_depth`` (0..1)."""

    name = "needle_haystack"

    def records(self) -> list[Record]:
        records = super().records()
        entries = read_annotations(self.ann_path)
        for i, (record, entry) in enumerate(zip(records, entries)):
            where = f"{self.ann_path} entry {i}"
            frames, depth = (require(entry, key, where) for key in CELL_FIELDS)
            if not isinstance(frames, int) or frames < 1 or not 0.0 <= float(depth) <= 1.0:
                raise DataError(f"{where}: haystack_frames must be an int >= 1 and needle_depth in [0, 1], got "
                                f"{frames!r} and {depth!r}")
            record.meta.update(haystack_frames=frames, needle_depth=float(depth))
        return records
