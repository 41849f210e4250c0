"""The runners' side of the datasets' bad-sample hooks (``set_output_dir``, ``set_max_bad_fraction``,
``reset_bad_samples``, ``write_bad_samples``, ``check_bad_share``, ``bad_samples``), shared by training and
evaluation.  A dataset without a hook is left alone.  Collective where it says so: every rank calls it."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional

from vlmkit.data.datasets.base import unique_samples
from vlmkit.protocols import ReportsBadSamples
from vlmkit.runners import distributed
from vlmkit.runners.distributed import DistEnv
from vlmkit.runners.train_data import call_hook


def bad_sample_counts(datasets: Mapping[str, Any], splits: Iterable[str]) -> dict[str, int]:
    """Unique bad samples per split (not failed reads: a resampled sample fails again each time it is drawn),
    for datasets that keep such a list."""
    return {split: len(unique_samples(datasets[split].bad_samples())) for split in dict.fromkeys(splits)
            if isinstance(datasets[split], ReportsBadSamples)}


class BadSampleBook:
    """Where each split lists its bad samples (``<output_dir>/<split>/``), when that list starts afresh, and the
    end-of-run write-out and share check."""

    def __init__(self, datasets: Mapping[str, Any], env: DistEnv, output_dir: Path):
        self.datasets, self.env, self.output_dir = datasets, env, Path(output_dir)

    def prepare(self, splits: Iterable[str], max_bad_fraction: Optional[float]) -> None:
        for split in dict.fromkeys(splits):
            call_hook(self.datasets[split], "set_output_dir", str(self.output_dir / split))
            call_hook(self.datasets[split], "set_max_bad_fraction", max_bad_fraction)

    def start_fresh(self, splits: Iterable[str]) -> None:
        """Collective: the lists start empty (rank 0 clears the shared files, then every rank waits)."""
        if self.env.is_main:
            for split in dict.fromkeys(splits):
                call_hook(self.datasets[split], "reset_bad_samples")
        distributed.barrier()

    def settle(self, splits: Iterable[str]) -> None:
        """Collective: rank 0 writes each list once every rank's entries are on disk; then every rank checks the
        whole run's share (all read the same list, so all stop together)."""
        splits = list(dict.fromkeys(splits))
        distributed.barrier()
        if self.env.is_main:
            for split in splits:
                call_hook(self.datasets[split], "write_bad_samples")
        for split in splits:
            call_hook(self.datasets[split], "check_bad_share")

    def counts(self, splits: Iterable[str]) -> dict[str, int]:
        return bad_sample_counts(self.datasets, splits)
