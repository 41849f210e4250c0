"""Like-for-like timing shared by the benchmarks (DESIGN.md, Habits).

``compare(sides, rounds)`` runs every side once as a warm-up, checks that the sides' outputs match (``same``),
then times them interleaved round by round, alternating the order (ABAB, BABA, ...) so that drift in the
machine's load falls on both sides alike.  Each run records wall time and CPU time: user + system of this
process and of its finished children (DataLoader workers are joined when their iterator ends, so their CPU
counts).  Results are medians; ``loadavg`` is the 1-minute load before and after, to judge how busy the
machine was.  Call ``pin_threads()`` first so both sides get the same intra-op threads.
"""
from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any


def pin_threads(threads: int = 1) -> None:
    """The same intra-op thread count for every side (and for workers, which inherit the environment)."""
    import torch

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    torch.set_num_threads(threads)


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished, waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds, output) of one call."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    out = fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu, out


def compare(sides: dict[str, Callable[[], Any]], rounds: int,
            same: Callable[[Any, Any], bool] = lambda a, b: a == b) -> dict[str, Any]:
    """Medians of wall and CPU time per side, and each side's ratio to the first (the baseline).

    Raises AssertionError when a side's warm-up output does not match the baseline's under ``same``."""
    if rounds < 1 or len(sides) < 2:
        raise ValueError("compare needs two sides or more and at least one round")
    load_before = os.getloadavg()[0]
    names = list(sides)
    outputs = {name: sides[name]() for name in names}  # warm-up: caches, lazy imports, page cache
    for name in names[1:]:
        assert same(outputs[names[0]], outputs[name]), f"'{name}' does not produce what '{names[0]}' does"
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            wall, cpu, _ = timed(sides[name])
            walls[name].append(wall)
            cpus[name].append(cpu)
    result: dict[str, Any] = {"rounds": rounds, "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                              "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                              else os.cpu_count()}
    base = names[0]
    for name in names:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        result[name] = {"wall_s": round(wall, 4), "cpu_s": round(cpu, 4),
                        "wall_range": [round(min(walls[name]), 4), round(max(walls[name]), 4)],
                        "wall_runs": [round(w, 5) for w in walls[name]], "cpu_runs": [round(c, 5) for c in cpus[name]]}
        if name != base:
            result[name]["wall_ratio"] = round(wall / statistics.median(walls[base]), 3)
            result[name]["cpu_ratio"] = round(cpu / max(statistics.median(cpus[base]), 1e-9), 3)
    return result
