"""TensorBoard scalars (needs the optional ``tensorboard`` package)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from vlmkit.errors import ConfigError
from vlmkit.registry import LOGGERS
from vlmkit.runners.loggers.base import RunLogger


@LOGGERS.register("tensorboard")
class TensorBoardLogger(RunLogger):
    """Writes every numeric metric as a scalar under ``<output_dir>/<subdir>``."""

    requires_packages = ("tensorboard",)  # checked at config validation (vlmkit.schema)

    def __init__(self, subdir: str = "tensorboard"):
        if importlib.util.find_spec("tensorboard") is None:
            raise ConfigError("run.loggers", "the 'tensorboard' logger needs the tensorboard package: "
                                             "pip install 'vlmkit[tensorboard]' (or drop it from run.loggers)")
        self.subdir = subdir
        self.writer = None

    def start(self, *, output_dir: Path, total_steps: int, start_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # A resumed run hides the interrupted attempt's events after its checkpoint: TensorBoard drops those with
        # step >= purge_step, and the checkpoint's own step was completed before it was saved.
        self.writer = SummaryWriter(log_dir=str(Path(output_dir) / self.subdir),
                                    purge_step=start_step + 1 if start_step else None)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
