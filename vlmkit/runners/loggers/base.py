"""Run loggers receive metrics on rank 0 only; the runner never calls them on other ranks."""
from __future__ import annotations

from pathlib import Path


class RunLogger:
    def start(self, *, output_dir: Path, total_steps: int, start_step: int) -> None:
        """Called once before the first step (after a resume, ``start_step`` > 0)."""

    def progress(self, step: int, metrics: dict[str, float]) -> None:
        """Called after every optimizer step with cheap live values (loss, lr)."""

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Called every ``log_every`` steps and after each evaluation."""

    def message(self, text: str) -> None:
        """A human-readable line (start-up report, checkpoint saved)."""

    def close(self) -> None:
        """Flush and release files; called at the end of training, also after an error."""
