"""Console: a tqdm progress bar with loss, learning rate, samples/s, data-wait share and ETA."""
from __future__ import annotations

import sys
from pathlib import Path

from tqdm.auto import tqdm

from vlmkit.registry import LOGGERS
from vlmkit.runners.loggers.base import RunLogger

SHOWN = ("loss", "lr", "samples_per_s", "data_wait")


def _fmt(value: float) -> str:
    return f"{value:.3e}" if abs(value) < 1e-3 and value != 0 else f"{value:.4g}"


@LOGGERS.register("console")
class ConsoleLogger(RunLogger):
    """A progress bar on stderr (ETA comes from the bar) and one line per logged step."""

    def __init__(self, progress_bar: bool = True):
        self.progress_bar = progress_bar
        self.bar: tqdm | None = None

    def start(self, *, output_dir: Path, total_steps: int, start_step: int) -> None:
        if self.progress_bar:
            self.bar = tqdm(total=total_steps, initial=start_step, desc="train", dynamic_ncols=True,
                            file=sys.stderr)

    def progress(self, step: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix({k: _fmt(metrics[k]) for k in SHOWN if k in metrics}, refresh=False)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.message(f"step {step}: " + "  ".join(f"{k}={_fmt(v)}" for k, v in metrics.items()
                                                  if isinstance(v, (int, float))))

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
