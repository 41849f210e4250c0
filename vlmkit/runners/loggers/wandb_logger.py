"""Weights & Biases (needs the optional ``wandb`` package; ``mode: offline`` or ``WANDB_MODE=offline`` writes
the run under ``<output_dir>/wandb`` for a later ``wandb sync``)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal, Optional

from omegaconf import OmegaConf

from vlmkit.config import RESOLVED_NAME
from vlmkit.errors import ConfigError
from vlmkit.registry import LOGGERS
from vlmkit.runners.loggers.base import RunLogger


@LOGGERS.register("wandb", aliases=["weights_and_biases"])
class WandbLogger(RunLogger):
    """Every numeric metric at its optimizer step, the resolved config as the run's config.

    A W&B run's steps only go forward, so a resumed training run (which logs again the steps after its
    checkpoint) is a new W&B run named ``<name>@<start step>`` in the group ``<name>``; ``metrics.jsonl`` and
    ``vlmkit plot`` stitch the attempts together."""

    requires_packages = ("wandb",)  # checked at config validation (vlmkit.schema)

    def __init__(self, project: str = "vlmkit", name: Optional[str] = None, entity: Optional[str] = None,
                 mode: Optional[Literal["online", "offline", "disabled"]] = None, tags: list[str] = ()):
        if importlib.util.find_spec("wandb") is None:
            raise ConfigError("run.loggers", "the 'wandb' logger needs the wandb package: "
                                             "pip install 'vlmkit[wandb]' (or drop it from run.loggers)")
        self.project, self.name, self.entity, self.mode, self.tags = project, name, entity, mode, list(tags)
        self.run = None

    def start(self, *, output_dir: Path, total_steps: int, start_step: int) -> None:
        import wandb

        output_dir = Path(output_dir)
        name = self.name or output_dir.name
        config_file = output_dir / RESOLVED_NAME
        config = OmegaConf.to_container(OmegaConf.load(config_file)) if config_file.exists() else {}
        self.run = wandb.init(project=self.project, entity=self.entity, mode=self.mode, dir=str(output_dir),
                              name=name if start_step == 0 else f"{name}@{start_step}", group=name,
                              tags=self.tags, config={**config, "start_step": start_step,
                                                      "total_steps": total_steps})

    def log(self, step: int, metrics: dict[str, float]) -> None:
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        if self.run is not None and numbers:
            self.run.log(numbers, step=step)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
