"""Generic language-modelling task: train on the model's loss, evaluate mean token loss and perplexity."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from vlmkit.contracts import IGNORE_INDEX
from vlmkit.registry import TASKS
from vlmkit.tasks.base import Task, model_loss



@TASKS.register("language_modeling", aliases=["lm"])
class LanguageModelingTask(Task):
    """Loss = the model's loss; metrics = token-weighted mean loss and perplexity."""

    def valid_step(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        loss = model_loss(model(**batch))
        labels = batch.get("labels")
        tokens = int((labels != IGNORE_INDEX).sum()) if isinstance(labels, torch.Tensor) else 1
        return [{"loss": float(loss), "tokens": tokens}]

    def evaluate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        total_tokens = sum(r["tokens"] for r in records)
        if total_tokens == 0:
            raise ValueError("language_modeling.evaluate: no supervised tokens in the evaluation records")
        mean_loss = sum(r["loss"] * r["tokens"] for r in records) / total_tokens
        return {"loss": mean_loss, "perplexity": math.exp(mean_loss) if mean_loss < 700 else math.inf}
