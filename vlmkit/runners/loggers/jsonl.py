"""JSON lines: one object per logged step in ``<output_dir>/<filename>``."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO

from vlmkit.registry import LOGGERS
from vlmkit.runners.loggers.base import RunLogger


@LOGGERS.register("jsonl", aliases=["json"])
class JsonLinesLogger(RunLogger):
    """Appends ``{"step": ..., "time": ..., **metrics}`` lines (appending keeps a resumed run's history)."""

    def __init__(self, filename: str = "metrics.jsonl"):
        self.filename = filename
        self.file: IO[str] | None = None

    def start(self, *, output_dir: Path, total_steps: int, start_step: int) -> None:
        self.file = open(Path(output_dir) / self.filename, "a")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if self.file is None:
            raise RuntimeError("jsonl logger used before start()")
        self.file.write(json.dumps({"step": step, "time": time.time(), **metrics}) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
