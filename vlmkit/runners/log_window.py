"""What a training log line reports about the steps since the previous one."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class LogWindow:
    """The optimizer steps since the last log line: their mean loss, samples per second (every rank's samples,
    ``samples_per_step`` per step) and the share of the time spent waiting for data."""

    def __init__(self, samples_per_step: int):
        self.samples_per_step = samples_per_step
        self.restart()

    def restart(self) -> None:
        self.losses: list[float] = []
        self.start, self.data_wait = time.perf_counter(), 0.0

    @contextlib.contextmanager
    def waiting_for_data(self) -> Iterator[None]:
        began = time.perf_counter()
        yield
        self.data_wait += time.perf_counter() - began

    def add(self, loss: float) -> None:
        self.losses.append(loss)

    def close(self) -> dict[str, float]:
        """The window's figures; the next window starts now."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        figures = {"loss": sum(self.losses) / len(self.losses),
                   "samples_per_s": len(self.losses) * self.samples_per_step / elapsed,
                   "data_wait": self.data_wait / elapsed}
        self.restart()
        return figures
