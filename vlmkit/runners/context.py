"""What every runner (training, evaluation) sets up the same way, once: the run context.

In this order: the device, the process group (everything after it may use collectives), the seeds (offset by
rank), the output directory (rank 0 makes it and writes the resolved config there; every rank waits), the loggers
and mixed precision.  Loggers hear from rank 0 only (``say``, ``log``...), so a runner never checks the rank to
report something.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import OmegaConf

from vlmkit.config import save_config
from vlmkit.dtypes import TORCH_NAMES, torch_dtype
from vlmkit.registry import LOGGERS
from vlmkit.runners import distributed
from vlmkit.runners.distributed import DistEnv
from vlmkit.runners.rng import seed_everything

# autocast dtype of each run.precision (names from vlmkit.dtypes); fp32 runs without autocast
PRECISIONS = {name: None if name == "fp32" else torch_dtype(name) for name in TORCH_NAMES}


def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> contextlib.AbstractContextManager:
    """Mixed precision on ``device`` in ``dtype`` (``PRECISIONS``' value: None is fp32, no autocast)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


class RunContext:
    """A run's device, process group, output directory, loggers and precision (see the module docstring).

    ``section``: the config section the settings come from ('run', 'evaluation'), for error messages.
    ``join``: how this process joins the process group (a training strategy's ``setup``; plain
    ``init_distributed`` by default)."""

    def __init__(self, *, section: str, output_dir: str, device: Optional[str], seed: int, precision: str,
                 loggers: Sequence[Any], config: Optional[dict],
                 join: Callable[[torch.device], DistEnv] = distributed.init_distributed):
        self.device = distributed.pick_device(distributed.read_env(), device)
        self.env = join(self.device)
        seed_everything(seed + self.env.rank)
        self.output_dir = Path(distributed.broadcast_object(str(output_dir)))
        if self.env.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            if config is not None:  # the resolved config next to the run's outputs
                save_config(OmegaConf.create(config), self.output_dir)
        distributed.barrier()
        self.loggers = [LOGGERS.build(cfg, f"{section}.loggers[{i}]") for i, cfg in enumerate(loggers)]
        self.autocast_dtype = PRECISIONS[precision]

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.autocast_dtype)

    # ------------------------------------------------------------------ loggers (rank 0 only)
    def start_loggers(self, *, total_steps: int, start_step: int) -> None:
        for logger in self._main_loggers():
            logger.start(output_dir=self.output_dir, total_steps=total_steps, start_step=start_step)

    def say(self, text: str) -> None:
        for logger in self._main_loggers():
            logger.message(text)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for logger in self._main_loggers():
            logger.log(step, metrics)

    def progress(self, step: int, metrics: dict[str, float]) -> None:
        for logger in self._main_loggers():
            logger.progress(step, metrics)

    def close_loggers(self) -> None:
        for logger in self._main_loggers():
            logger.close()

    def _main_loggers(self) -> list[Any]:
        return self.loggers if self.env.is_main else []
