"""What a batch means: a task turns batches into a training loss, evaluation records and metrics."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import torch

from vlmkit.contracts import IGNORE_INDEX
from vlmkit.errors import DataError
from vlmkit.protocols import is_encoder_decoder


def supervised_tokens(labels: torch.Tensor, encoder_decoder: bool) -> int:
    """Label tokens a transformers LM loss averages over: a causal LM predicts position t from t-1, so the first
    position of each row is never a target (``labels[..., 1:]``); a seq2seq decoder's labels are all targets."""
    targets = labels if encoder_decoder else labels[..., 1:]
    return int((targets != IGNORE_INDEX).sum())


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

    def supervised_tokens(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> int:
        """How many tokens the loss of ``train_step`` averages over (a token-weighted step needs it before the
        forward). A VideoLLM declares its LM's layout (``llm.is_encoder_decoder``); other models count as causal."""
        labels = batch.get("labels") if isinstance(batch, Mapping) else None
        if not isinstance(labels, torch.Tensor):
            raise DataError("run.loss_normalization 'token' weights each micro-batch by its supervised tokens, but "
                            "this training batch has no 'labels' tensor; set run.loss_normalization: sample")
        return supervised_tokens(labels, encoder_decoder=is_encoder_decoder(model))

    def valid_step(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Evaluation records of one batch (plain Python values, so ranks can exchange them)."""
        raise NotImplementedError(f"{type(self).__name__} does not define valid_step")

    def evaluate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Metrics from the records of a whole split (all ranks' records together)."""
        raise NotImplementedError(f"{type(self).__name__} does not define evaluate")

    def headline(self, metrics: Mapping[str, Any]) -> Optional[tuple[str, float]]:
        """(name, value) of the metric a results table leads with; None: no single headline."""
        return None
