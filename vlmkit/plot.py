"""`vlmkit plot RUN [RUN ...] --out fig.png`: training curves of one or more runs from their metrics.jsonl.

A RUN is a run's output directory or a metrics.jsonl file. Each metric gets a panel and each run a line in it.
A run resumed after a kill logs again the steps after its checkpoint; the restart marker the jsonl logger writes
(``{"event": "restart", "step": S}``) drops the interrupted attempt's values after step S, so no step is drawn twice.
"""
from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path

from vlmkit.errors import ConfigError

DEFAULT_METRICS = ("loss", "lr", "grad_norm", "samples_per_s")
TITLES = {"loss": "loss", "lr": "learning rate", "grad_norm": "gradient norm", "samples_per_s": "samples / s"}


def metrics_file(run: str | Path) -> Path:
    path = Path(run)
    path = path / "metrics.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(str(run), f"no metrics file at {path} (give a run's output directory or a .jsonl file)")
    return path


def read_curves(path: str | Path) -> dict[str, dict[int, float]]:
    """``{metric: {step: value}}``: after a restart marker at step S, earlier values past S are dropped, and a
    step logged twice keeps its last value."""
    curves: dict[str, dict[int, float]] = {}
    lines = Path(path).read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # a line cut short by a kill
            raise ConfigError(f"{path}:{number}", "not a JSON line") from None
        step = record.get("step")
        if not isinstance(step, int):
            continue
        if record.get("event") == "restart":
            for values in curves.values():
                for stale in [s for s in values if s > step]:
                    del values[stale]
            continue
        for key, value in record.items():
            if key not in ("step", "time", "event") and isinstance(value, (int, float)) and not isinstance(value, bool):
                curves.setdefault(key, {})[step] = float(value)
    return curves


def run_labels(runs: Sequence[str | Path]) -> list[str]:
    """The shortest trailing path parts that tell the runs apart."""
    paths = [Path(r).resolve() for r in runs]
    paths = [p.parent if p.suffix == ".jsonl" else p for p in paths]
    for depth in range(1, max(len(p.parts) for p in paths) + 1):
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def plot_runs(runs: Sequence[str | Path], out: str | Path, metrics: Sequence[str] = DEFAULT_METRICS) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [read_curves(metrics_file(r)) for r in runs]
    cols = min(2, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.0 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        drawn = False
        for label, run in zip(run_labels(runs), curves):
            points = sorted(run.get(metric, {}).items())
            if points:
                ax.plot([s for s, _ in points], [v for _, v in points], label=label, marker="." if len(points) < 30
                        else None)
                drawn = True
        ax.set_title(TITLES.get(metric, metric))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vlmkit plot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN", help="a run's output directory or its metrics.jsonl")
    parser.add_argument("--out", default="curves.png", help="the PNG to write (default: curves.png)")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS),
                        help=f"metrics to draw, one panel each (default: {' '.join(DEFAULT_METRICS)})")
    args = parser.parse_args(argv)
    print(plot_runs(args.runs, args.out, args.metrics))
    return 0
