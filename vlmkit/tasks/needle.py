"""Needle in a haystack: multiple-choice questions about a needle spliced into haystacks of chosen lengths and
depths; the answer is judged per sample, then accuracy is laid out on a (haystack frames x depth) grid."""
from __future__ import annotations

from typing import Any, Literal, Optional

from vlmkit.errors import DataError
from vlmkit.metrics.niah import accuracy_grid, write_grid
from vlmkit.protocols import ScoresSamples
from vlmkit.registry import METRICS, TASKS
from vlmkit.schema import Component, ComponentList, Runtime
from vlmkit.tasks.multiple_choice import MultipleChoiceTask


@TASKS.register("needle", aliases=["niah"])
class NeedleTask(MultipleChoiceTask):
    """Samples carry "haystack_frames" and "needle_depth" in their meta; ``correctness`` (an mc_accuracy config)
    decides each answer, ``metrics`` (default ``niah_grid``) score the records, and the grid is written to
    ``<output_dir>/<grid_name>_grid.json`` and ``.png`` by the evaluator's output directory for this dataset."""

    default_primary = "accuracy"

    def __init__(self, metrics: ComponentList("metrics") = ("niah_grid",),
                 correctness: Component("metrics") = "mc_accuracy", grid_name: str = "niah",
                 mode: Literal["generate", "loglik"] = "generate", score: Literal["mean", "sum"] = "mean",
                 option_format: str = "({letter}) {option}", options_key: str = "options",
                 max_new_tokens: Optional[int] = None, primary: Optional[str] = None,
                 generation: Runtime[Optional[dict]] = None, output_dir: Runtime[Optional[str]] = None):
        super().__init__(metrics, mode, score, option_format, options_key, max_new_tokens, primary, generation,
                         output_dir)
        self.correctness = METRICS.build(correctness, path="task.correctness")
        if not isinstance(self.correctness, ScoresSamples):
            raise DataError(f"needle.correctness must be a metric with a per-sample verdict (mc_accuracy), got "
                            f"{type(self.correctness).__name__}")
        self.grid_name = grid_name

    def evaluate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        judged = [{**r, "correct": bool(self.correctness.score_sample(r)["correct"])} for r in records]
        result = super().evaluate(judged)
        if self.output_dir is not None:
            grid = accuracy_grid(judged)
            write_grid(grid, self.output_dir / f"{self.grid_name}_grid.json",
                       self.output_dir / f"{self.grid_name}_grid.png")
            result["grid_json"] = str(self.output_dir / f"{self.grid_name}_grid.json")
        return result
