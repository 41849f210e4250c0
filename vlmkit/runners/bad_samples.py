"""The runners' side of the datasets' bad-sample hooks (``set_output_dir``, ``set_max_bad_fraction``,
``reset_bad_samples``, ``write_bad_samples``, ``check_bad_share``, ``bad_samples``), shared by training and
evaluation.  A dataset without a hook is left alone.  Collective where it says so: every rank calls it."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from vlmkit.data.datasets.base import unique_samples


def bad_sample_counts(datasets: Mapping[str, Any], splits: Iterable[str]) -> dict[str, int]:
    """Unique bad samples per split (not failed reads: a resampled sample fails again each time it is drawn),
    for datasets that keep such a list."""
    return {split: len(unique_samples(datasets[split].bad_samples())) for split in dict.fromkeys(splits)
            if hasattr(datasets[split], "bad_samples")}
