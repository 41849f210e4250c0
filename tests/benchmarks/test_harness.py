"""The benchmarks' timing harness: refuses unlike sides, interleaves them, counts the workers' CPU."""
from __future__ import annotations

import resource
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import harness  # noqa: E402


def test_sides_whose_outputs_differ_are_not_timed():
    calls = []
    sides = {"base": lambda: calls.append("base") or 1, "other": lambda: calls.append("other") or 2}
    with pytest.raises(AssertionError, match="'other' does not produce what 'base' does"):
        harness.compare(sides, rounds=3)
    assert calls == ["base", "other"]  # the warm-up only


def test_rounds_alternate_the_order_and_report_medians_and_ratios():
    calls = []
    sides = {"a": lambda: calls.append("a") or 0, "b": lambda: calls.append("b") or 0}
    result = harness.compare(sides, rounds=4)
    assert calls == ["a", "b"] + ["a", "b", "b", "a"] * 2
    assert result["rounds"] == 4 and len(result["loadavg"]) == 2
    assert {"wall_s", "cpu_s", "wall_range", "wall_ratio", "cpu_ratio"} <= set(result["b"])
    assert "wall_ratio" not in result["a"]


class Busy(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        x = torch.ones(200, 200)
        for _ in range(40):
            x = (x @ x).clamp(max=1.0)
        return i


def rusage(who) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def test_cpu_time_includes_finished_dataloader_workers():
    harness.pin_threads(1)
    own, children = rusage(resource.RUSAGE_SELF), rusage(resource.RUSAGE_CHILDREN)
    _, cpu, out = harness.timed(lambda: [int(b) for b in DataLoader(Busy(), num_workers=1)])
    own, children = rusage(resource.RUSAGE_SELF) - own, rusage(resource.RUSAGE_CHILDREN) - children
    assert out == [0, 1]
    assert children > 0.01  # the worker's CPU reached this process when the worker was joined
    assert cpu >= own + 0.5 * children
