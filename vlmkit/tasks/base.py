"""What a batch means: a task turns batches into a training loss, evaluation records and metrics."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from vlmkit.errors import DataError


def model_loss(output: Any) -> torch.Tensor:
    """The loss of a model output: a mapping with 'loss' or an object with ``.loss`` (transformers style)."""
    loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    if loss is None:
        raise DataError("the model returned no loss: its forward must return a dict or an output object with "
                        "'loss' (are 'labels' missing from the batch?)")
    return loss


class Task:
    """Base task: ``model(**batch)`` gives the loss; subclasses add predictions and metrics."""

    def train_step(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """A dict with a scalar 'loss' tensor (and optionally more scalars to log)."""
        return {"loss": model_loss(model(**batch))}

    def valid_step(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Evaluation records of one batch (plain Python values, so ranks can exchange them)."""
        raise NotImplementedError(f"{type(self).__name__} does not define valid_step")

    def evaluate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Metrics from the records of a whole split (all ranks' records together)."""
        raise NotImplementedError(f"{type(self).__name__} does not define evaluate")
