"""Run one experiment over a grid of overrides and collect one results table (CSV and Markdown).

    vlmkit sweep --cfg-path train_configs/X.yaml \
        --grid "model.branches.0.stages.1.pool_level,model.branches.1.stages.1.pool_level=1,2,4,8,16" \
        [--eval-cfg eval_configs/Y.yaml] [--build-only [--meta]] [--out DIR] [key=value ...]

A grid axis is ``KEYS=V1,V2,...``; several comma-joined KEYS all take the same value (VideoGPT+'s two branches
share one pool level). Several axes give their cartesian product. Each row records the axis values, visual tokens
per video, parameters (all and trainable), and, unless ``--build-only``, the final training loss and the
evaluation metrics. ``--build-only --meta`` builds full-size models on the meta device: token and parameter
columns for any size without weights or memory.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.config import load_config
from vlmkit.errors import ConfigError


@dataclass
class Axis:
    keys: list[str]
    values: list[str]

    @property
    def label(self) -> str:
        return self.keys[0].rsplit(".", 1)[-1]


def parse_axis(text: str) -> Axis:
    if "=" not in text:
        raise ConfigError("--grid", f"cannot read grid axis '{text}': write KEY[,KEY...]=V1,V2,...")
    keys, values = text.split("=", 1)
    keys_list = [k.strip() for k in keys.split(",") if k.strip()]
    values_list = [v.strip() for v in values.split(",") if v.strip()]
    if not keys_list or not values_list:
        raise ConfigError("--grid", f"grid axis '{text}' needs at least one key and one value")
    return Axis(keys_list, values_list)


def grid_points(axes: Sequence[Axis]) -> list[list[tuple[Axis, str]]]:
    return [list(zip(axes, combo)) for combo in itertools.product(*(a.values for a in axes))]


def count_parameters(model: Any) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def run_point(cfg_path: str, overrides: list[str], point: list[tuple[Axis, str]], out_dir: Path,
              eval_cfg: str | None, build_only: bool, meta: bool) -> dict[str, Any]:
    """One grid point: build (and train, and evaluate) and return its table row."""
    import torch

    from vlmkit.assemble import assemble, build_model

    tag = "_".join(f"{axis.label}-{value}" for axis, value in point) or "base"
    point_overrides = [f"{key}={value}" for axis, value in point for key in axis.keys]
    row: dict[str, Any] = {axis.label: value for axis, value in point}
    run_dir = out_dir / tag
    cfg = load_config(cfg_path, [*overrides, *point_overrides, f"run.output_dir={run_dir}"], purpose="train")
    if build_only:
        with torch.device("meta") if meta else torch.device("cpu"):
            model = build_model(cfg)
    else:
        experiment = assemble(cfg, section="run")
        model = experiment.model
        summary = experiment.runner.train()
        row["final_train_loss"] = summary["losses"][-1] if summary["losses"] else None
        row["steps"] = summary["global_step"]
    row["visual_tokens"] = getattr(model, "visual_tokens", None)
    row["params"], row["trainable_params"] = count_parameters(model)
    if eval_cfg and not build_only:
        eval_config = load_config(eval_cfg, [*point_overrides, f"evaluation.checkpoint={run_dir}",
                                             f"evaluation.output_dir={run_dir / 'eval'}"], purpose="eval")
        results = assemble(eval_config, section="evaluation").runner.evaluate()
        for task, metrics in (results.get("metrics", results) or {}).items():
            if isinstance(metrics, dict):
                row.update({f"{task}/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
            elif isinstance(metrics, (int, float)):
                row[task] = metrics
    return row


def write_table(rows: list[dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "sweep.csv", out_dir / "sweep.md"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vlmkit sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg-path", required=True, help="the training config")
    parser.add_argument("--grid", action="append", required=True, metavar="KEYS=V1,V2,...")
    parser.add_argument("--eval-cfg", default=None, help="an evaluation config run on each trained point")
    parser.add_argument("--out", default="output/sweep", help="folder for runs and the table")
    parser.add_argument("--build-only", action="store_true", help="build models only: tokens and parameters")
    parser.add_argument("--meta", action="store_true", help="with --build-only: build on the meta device")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides for every point")
    args = parser.parse_intermixed_args(argv)
    if args.meta and not args.build_only:
        parser.error("--meta only makes sense with --build-only (meta tensors cannot be trained)")
    out_dir = Path(args.out)
    axes = [parse_axis(text) for text in args.grid]
    labels = [axis.label for axis in axes]
    if len(set(labels)) != len(labels):
        parser.error(f"two grid axes end in the same key name ({labels}); the table needs distinct column names")
    rows = []
    for point in grid_points(axes):
        rows.append(run_point(args.cfg_path, args.overrides, point, out_dir, args.eval_cfg, args.build_only,
                              args.meta))
        print(json.dumps(rows[-1]))
    csv_path, md_path = write_table(rows, out_dir)
    print(md_path.read_text())
    print(f"table written to {csv_path} and {md_path}")
    return 0
