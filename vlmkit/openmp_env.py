"""OpenMP's idle worker threads sleep instead of spinning: the default of the vlmkit commands.

torch's intra-op pool is OpenMP (GNU libgomp in the Linux wheels), whose idle threads busy-wait by default. When
the machine has other work on its cores (a shared box, DataLoader workers, a second job), a spinning thread keeps
the core that the thread holding the work needs, and every parallel region waits a scheduler tick: on a loaded
2-core machine at torch's default 2 threads, evaluating the tiny recipe took 10-30x longer than at 1 thread and
burnt 10x the CPU, one-by-one and batched generation alike (docs/performance.md, "Generation"). With
``OMP_WAIT_POLICY=PASSIVE`` idle threads sleep, which costs a wake-up of a few microseconds per parallel region.

OpenMP reads the variable once, when torch loads, so the commands (``vlmkit``, ``train.py``, ``evaluate.py``) set
it before importing anything that imports torch. A policy the user set (``OMP_WAIT_POLICY=ACTIVE``) is kept.
"""
from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

VARIABLE = "OMP_WAIT_POLICY"
DEFAULT = "PASSIVE"


def quiet_openmp_workers(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless already set. True when the policy in force for this process is the one
    now in ``environ`` (torch not loaded yet); DataLoader workers and child processes inherit it either way."""
    environ.setdefault(VARIABLE, DEFAULT)
    return "torch" not in sys.modules
