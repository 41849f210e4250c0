"""How many DataLoader workers decode a dataset: ``num_workers: auto`` (the default) or a number.

``auto`` is ``min(4, CPUs available to this process / processes on this node - 1)`` workers, and 0 (decode in the
main process) when this process reads fewer than ``AUTO_MIN_SAMPLES`` samples: starting a worker costs about a
second, more than decoding a handful of clips.  A number is used as given; 0 always decodes in the main process.
"""
from __future__ import annotations

import os
from typing import Literal, Optional, Union

from vlmkit.errors import ConfigError

AUTO_MAX_WORKERS = 4
AUTO_MIN_SAMPLES = 64

NumWorkers = Union[int, Literal["auto"]]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_workers(samples: Optional[int]) -> int:
    """The ``auto`` choice for a process reading ``samples`` samples (None: unknown, a stream)."""
    if samples is not None and samples < AUTO_MIN_SAMPLES:
        return 0
    per_node = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(AUTO_MAX_WORKERS, available_cpus() // per_node - 1))


def check_num_workers(setting: NumWorkers, key: str) -> NumWorkers:
    """``setting`` itself when it is ``"auto"`` or an integer >= 0, else a ConfigError naming ``key``."""
    if setting == "auto" or (isinstance(setting, int) and not isinstance(setting, bool) and setting >= 0):
        return setting
    raise ConfigError(key, f"must be 'auto' or an integer >= 0, got {setting!r}")


def resolve_num_workers(setting: NumWorkers, samples: Optional[int], key: str) -> int:
    """The number of workers for a process reading ``samples`` samples."""
    setting = check_num_workers(setting, key)
    return auto_workers(samples) if setting == "auto" else setting
