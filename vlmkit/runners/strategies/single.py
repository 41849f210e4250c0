"""Single process, no wrapping."""
from __future__ import annotations

import torch

from vlmkit.errors import ConfigError
from vlmkit.registry import STRATEGIES
from vlmkit.runners.distributed import DistEnv
from vlmkit.runners.strategies.base import Strategy


@STRATEGIES.register("single")
class SingleProcess(Strategy):
    """One process on one device; refuses to run under a multi-process torchrun."""

    def setup(self, device: torch.device) -> DistEnv:
        env = super().setup(device)
        if env.distributed:
            raise ConfigError("run.strategy", f"'single' cannot run with WORLD_SIZE={env.world_size}; "
                                              "use 'ddp', 'zero' or 'fsdp' under torchrun")
        return env
