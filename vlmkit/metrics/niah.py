"""Needle in a haystack: where needles go, and the accuracy grid (haystack frames x needle depth).

Construction works on frame-index lists or tensors (what a sampler produced), never on decoding: a needle
clip (or single frame) is spliced into a haystack at a depth fraction, 0.0 = before the first frame,
1.0 = after the last.  Scoring groups per-sample ``correct`` by (haystack_frames, needle_depth), writes the
grid as JSON and a heat-map PNG (matplotlib, Agg).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from vlmkit.errors import DataError
from vlmkit.metrics.base import field, mean, require_nonempty
from vlmkit.registry import METRICS


def needle_position(haystack_frames: int, depth: float) -> int:
    """Index in the haystack before which the needle goes: round(depth * haystack_frames)."""
    if haystack_frames < 0 or not 0.0 <= depth <= 1.0:
        raise DataError(f"needle depth must be in [0, 1] and haystack_frames >= 0, got {depth} and {haystack_frames}")
    return int(round(depth * haystack_frames))


def insert_needle(haystack: Any, needle: Any, depth: float):
    """Haystack with the needle frames spliced in at ``depth``; lists stay lists, tensors are concatenated on
    dim 0 (frames first).  Returns (combined, needle_start_index)."""
    position = needle_position(len(haystack), depth)
    if isinstance(haystack, (list, tuple)):
        needle_items = list(needle) if isinstance(needle, (list, tuple)) else [needle]
        return list(haystack[:position]) + needle_items + list(haystack[position:]), position
    import torch

    if not isinstance(haystack, torch.Tensor) or not isinstance(needle, torch.Tensor):
        raise DataError(f"insert_needle takes two lists or two tensors, got {type(haystack).__name__} "
                        f"and {type(needle).__name__}")
    if needle.dim() == haystack.dim() - 1:
        needle = needle.unsqueeze(0)  # a single frame
    if needle.shape[1:] != haystack.shape[1:]:
        raise DataError(f"needle frames {tuple(needle.shape[1:])} do not match haystack frames "
                        f"{tuple(haystack.shape[1:])}")
    return torch.cat([haystack[:position], needle, haystack[position:]], dim=0), position


def needle_grid_samples(haystack_lengths: Sequence[int], depths: Sequence[float]) -> list[dict[str, Any]]:
    """One sample description per grid cell: haystack_frames, needle_depth, needle_index."""
    return [{"haystack_frames": n, "needle_depth": d, "needle_index": needle_position(n, d)}
            for n in haystack_lengths for d in depths]


def accuracy_grid(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{"haystack_frames": [...], "needle_depth": [...], "accuracy": rows per haystack length (None = no data),
    "count": same shape}."""
    cells: dict[tuple[int, float], list[float]] = {}
    for r in results:
        key = (int(field(r, "haystack_frames", "niah")), float(field(r, "needle_depth", "niah")))
        cells.setdefault(key, []).append(float(bool(field(r, "correct", "niah"))))
    lengths = sorted({k[0] for k in cells})
    depths = sorted({k[1] for k in cells})
    return {"haystack_frames": lengths, "needle_depth": depths,
            "accuracy": [[mean(cells[(n, d)]) if (n, d) in cells else None for d in depths] for n in lengths],
            "count": [[len(cells.get((n, d), [])) for d in depths] for n in lengths]}


def write_grid(grid: dict[str, Any], json_path: str | Path, png_path: Optional[str | Path] = None,
               title: str = "Needle in a haystack accuracy") -> None:
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(grid, indent=1))
    if png_path is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.array([[np.nan if v is None else v for v in row] for row in grid["accuracy"]], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(grid["needle_depth"]), 1.0 + 0.6 * len(grid["haystack_frames"])))
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(grid["needle_depth"])), [f"{d:.0%}" for d in grid["needle_depth"]])
    ax.set_yticks(range(len(grid["haystack_frames"])), [str(n) for n in grid["haystack_frames"]])
    ax.set_xlabel("needle depth")
    ax.set_ylabel("haystack frames")
    ax.set_title(title)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


@METRICS.register("niah_grid")
class NeedleGrid:
    """Accuracy per (haystack frames, needle depth) cell; optionally writes the grid JSON and heat map."""

    def __init__(self, output_dir: Optional[str] = None, name: str = "niah"):
        """output_dir: where <name>_grid.json and <name>_grid.png go (null: nothing is written)."""
        self.output_dir = output_dir
        self.name = name

    def compute(self, predictions: list[dict[str, Any]]) -> dict[str, float]:
        """Predictions carry haystack_frames, needle_depth and correct (a task's multiple-choice verdict)."""
        require_nonempty(predictions, "niah_grid")
        grid = accuracy_grid(predictions)
        if self.output_dir:
            out = Path(self.output_dir)
            write_grid(grid, out / f"{self.name}_grid.json", out / f"{self.name}_grid.png")
        result = {"accuracy": mean(float(bool(p["correct"])) for p in predictions),
                  "num_samples": float(len(predictions))}
        for n, row in zip(grid["haystack_frames"], grid["accuracy"]):
            for d, value in zip(grid["needle_depth"], row):
                if value is not None:
                    result[f"accuracy/frames={n}/depth={d:g}"] = value
        return result
