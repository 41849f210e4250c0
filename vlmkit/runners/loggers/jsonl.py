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
    """Appends ``{"step": ..., "time": ..., **metrics}`` lines (appending keeps a resumed run's history); a run
    that starts on an existing file, a resume, first appends ``{"event": "restart", "step": <start step>}``."""

    def __init__(self, filename: str = "metrics.jsonl"):
        self.filename = filename
        self.file: IO[str] | None = None

    def start(self, *, output_dir: Path, total_steps: int, start_step: int) -> None:
        path = Path(output_dir) / self.filename
        earlier = path.exists() and path.stat().st_size > 0
        self.file = open(path, "a")
        if earlier or start_step > 0:
            # Steps after ``start_step`` logged before this line belong to an interrupted attempt: the resumed run
            # logs them again, and readers (``vlmkit plot``) keep only the new values.
            self.file.write(json.dumps({"event": "restart", "step": start_step, "time": time.time()}) + "\n")
            self.file.flush()

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if self.file is None:
            raise RuntimeError("jsonl logger used before start()")
        self.file.write(json.dumps({"step": step, "time": time.time(), **metrics}) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
