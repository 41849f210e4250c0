"""The CPU demo: synthetic shape videos -> stage 1 caption pretraining -> stage 2 instruction tuning ->
held-out evaluation, with a results table, a loss plot and a results JSON.

    python -m vlmkit.demo [--out DIR] [--seed S] [--quick] [--overwrite]

Every stage is an ordinary experiment config (train_configs/demo/stage1_captions.yaml, stage2_instruct.yaml,
eval_configs/demo/eval.yaml) run through the same assembly as train.py / evaluate.py; this driver only sets
paths, seeds and sizes as command-line-style overrides, and hands stage 1's weights to stage 2.

Reruns: data is generated under ``DIR/data`` unless an identical set is already there; a set of other
parameters (another seed or size) is refused in one line naming the differences, asking for another ``--out``
or ``--overwrite`` (which deletes the demo's outputs under DIR and starts over).  Both stages always train
again, and the evaluation reuses only predictions of exactly these weights, configs and data (its
provenance fingerprint); any others are recomputed, so the figures are always the current run's.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
STAGE1 = REPO / "train_configs" / "demo" / "stage1_captions.yaml"
STAGE2 = REPO / "train_configs" / "demo" / "stage2_instruct.yaml"
EVAL = REPO / "eval_configs" / "demo" / "eval.yaml"
# The questions a model that ignores time cannot answer (see vlmkit/demo/synthetic/questions.py).
TEMPORAL_TYPES = ("direction", "order")
MC_TYPES = ("colour", "shape", "direction", "order", "moving")


# Four questions about a video per training conversation: the video is encoded once for four answers, so stage 2
# trains on about four times as many questions per unit of compute as with single-turn conversations.
# Multiple-choice answers are the option text alone ("green", not "(B) green"): in this budget the tiny LM never
# learns which letter goes with which option (the letters it wrote were at chance, 0.24-0.31), and under teacher
# forcing a letter written first hands the answer to the text token. Answers first lifted seed 1 from 0.833 to
# 0.881 and seed 2 from 0.814 to 0.823 (0.842 with the text alone and stage 2's learning rate 2e-3). No "Only
# give the best option." line: it tells this model nothing (it did not make the steps measurably faster).
# The options come first and the question last, right before the answer: with the question first, the 2-layer LM
# often answered "which appears first" and "which moves" with the same object (order / moving 0.76 / 0.78, seed 2);
# with the question last 0.98 / 0.85 (overall 0.853 -> 0.884).
# In these shuffled conversations some turns follow a turn whose text holds their answer (a copying shortcut
# evaluation never offers); removing it cost more than it gave (docs/demo_recipe.md).
# One caption request in ten videos (the generator's default is one in four): stage 1 has taught captions already,
# and in stage 2 they were 18 % of the supervised tokens, against ~6 % for the answers of the hardest skill.
# Questions without "?", with the plain template (tiny_video_qa.yaml): the answer is predicted at the question's last
# word. "What colour is the cross?" among two objects (shape -> colour binding) had stayed at its floor (0.70) on
# about half the seeds with ChatML and "?": the answer position sat 4 tokens after the asked shape and, in the models
# that failed, never fetched it. docs/demo_recipe.md has the analysis and everything tried and not adopted.
GENERATOR = {"questions_per_conversation": 4, "mc_suffix": "", "mc_answer_format": "{option}",
             "mc_question_last": True, "caption_request_fraction": 0.1, "question_mark": False}


@dataclass(frozen=True)
class DemoSize:
    train_videos: int
    test_videos: int
    stage1_steps: int
    stage2_steps: int
    batch_size: int
    warmup_steps: int
    model_overrides: tuple[str, ...] = ()   # config overrides of the model, the same in every stage


# A caption step (stage 1) costs about half an instruction step, and the captions name every object with its
# colour, shape and motion, which teaches binding: 600 + 800 steps beat 400 + 1000 at about the same time.
# 12,000 training videos (6,000 before) cost ~10 s more to write and no training time; with them order and "which
# moves" came out better on both tuning seeds tried (seed 3: 0.86 / 0.79 -> 0.975 / 0.90).
# --quick trains the ViT's depthwise mixing: the full convolution leaves stage 1's caption plateau after ~250
# steps, and quick's 300 steps would end there (the model would learn nothing; tiny_video_qa.yaml).
SIZES = {"full": DemoSize(train_videos=12000, test_videos=400, stage1_steps=600, stage2_steps=800, batch_size=32,
                          warmup_steps=50),
         "quick": DemoSize(train_videos=1500, test_videos=60, stage1_steps=300, stage2_steps=150, batch_size=32,
                           warmup_steps=20, model_overrides=("model.branches.0.encoder.local_mixing_depthwise=true",))}


def default_threads() -> int:
    """Two torch threads, or one on a one-core machine. On 2 cores, 2 threads beside the decoding worker made a
    stage-2 step 0.67x the wall time of 1 thread for 1.05x the CPU (60-step runs, AMD EPYC, idle OpenMP threads
    sleeping: python -m vlmkit.demo sets OMP_WAIT_POLICY=PASSIVE); the model's matrix products are most of a step."""
    from vlmkit.runners.workers import available_cpus

    return min(2, available_cpus())


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (DataLoader workers, encoder processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Clock:
    """Wall and CPU seconds per phase."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}

    def run(self, name: str, fn, *args, **kwargs):
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = fn(*args, **kwargs)
        self.phases[name] = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(cpu_seconds() - cpu, 1)}
        print(f"[demo] {name}: {self.phases[name]['wall_s']} s wall, {self.phases[name]['cpu_s']} s CPU", flush=True)
        return result


# What the demo writes under --out besides data/ (deleted by --overwrite, and before a rerun reports anything).
RUN_OUTPUTS = ("stage1", "stage2", "eval", "results.json", "training_loss.png")


class DemoError(Exception):
    """An expected situation the demo reports in one line (no traceback)."""


# ---------------------------------------------------------------------------------------------- stages
def _config(path: Path, overrides: list[str], purpose: str):
    from vlmkit.config import load_config

    return load_config(str(path), overrides, purpose=purpose)


def train_stage(config_path: Path, overrides: list[str]) -> dict:
    """Assemble and train one stage, exactly as ``train.py --cfg-path CONFIG OVERRIDES`` would."""
    from vlmkit.assemble import assemble

    experiment = assemble(_config(config_path, overrides, "train"), section="run")
    return experiment.runner.train()


def evaluate_stage(overrides: list[str]) -> dict:
    from vlmkit.assemble import assemble

    experiment = assemble(_config(EVAL, overrides, "eval"), section="evaluation")
    return experiment.runner.evaluate()


# ---------------------------------------------------------------------------------------------- reporting
def _metric(metrics: dict, *names: str) -> float | None:
    for name in names:
        if name in metrics and isinstance(metrics[name], (int, float)):
            return float(metrics[name])
    return None


def mc_summary(entry: dict[str, Any], predictions: Path) -> dict[str, Any]:
    """The evaluator's multiple-choice figures for one dataset (``entry``: its ``results.json`` entry, scored
    by the config's ``mc_accuracy``), with the count of questions per type read from its predictions and the
    temporal types' accuracy (their count-weighted mean)."""
    metrics = entry.get("metrics", {})
    counts: dict[str, int] = {}
    with open(predictions) as f:
        for line in f:
            task_type = json.loads(line)["task_type"]
            counts[task_type] = counts.get(task_type, 0) + 1
    per_type = {t: float(metrics[f"accuracy/{t}"]) for t in sorted(counts) if f"accuracy/{t}" in metrics}
    temporal_n = sum(counts.get(t, 0) for t in TEMPORAL_TYPES if t in per_type)
    temporal = (sum(per_type[t] * counts[t] for t in TEMPORAL_TYPES if t in per_type) / temporal_n
                if temporal_n else None)
    return {"per_type": per_type, "counts": dict(sorted(counts.items())), "overall": metrics.get("accuracy"),
            "temporal": temporal, "num_no_answer": metrics.get("num_no_answer")}


def results_table(mc: dict[str, Any], evaluation: dict[str, Any],
                  generated: dict[str, Any] | None = None) -> str:
    """The demo's table, in the evaluator's units: multiple choice scored by option likelihood ('likeliest',
    dataset ``mc``) and, next to it, by the option the model writes ('written', ``mc_generated``);
    ``evaluation`` is the evaluator's results (its ``datasets`` entries)."""
    def cell(breakdown: dict | None, key: str, kind: str = "per_type") -> str:
        if breakdown is None:
            return "-"
        value = breakdown[kind].get(key) if kind == "per_type" else breakdown[kind]
        return "-" if value is None else f"{value:.3f}"

    rows = [("multiple choice (chance 0.25)", "likeliest", "written", "n")]
    rows += [(f"  {t}", cell(mc, t), cell(generated, t), str(mc["counts"][t])) for t in MC_TYPES
             if t in mc["per_type"]]
    rows += [("  temporal (direction + order)", cell(mc, "", "temporal"), cell(generated, "", "temporal"),
              str(sum(mc["counts"].get(t, 0) for t in TEMPORAL_TYPES))),
             ("  overall", cell(mc, "", "overall"), cell(generated, "", "overall"), str(sum(mc["counts"].values())))]
    if generated is not None and generated.get("num_no_answer") is not None:
        rows.append(("  written answers naming no option", "", str(int(generated["num_no_answer"])), ""))
    scores = {key: entry.get("metrics", {}) for key, entry in evaluation.get("datasets", {}).items()}
    open_em = _metric(scores.get("open_qa", {}), "exact_match")
    if open_em is not None:
        rows.append(("open QA exact match", f"{open_em:.3f}", "", str(int(scores["open_qa"]["num_samples"]))))
    for name in ("CIDEr", "BLEU_4", "ROUGE_L"):
        value = _metric(scores.get("captions", {}), name)
        if value is not None:
            rows.append((f"captions {name}", f"{value:.3f}", "", ""))
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b:>9}  {c:>7}  {d:>5}" for a, b, c, d in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def plot_losses(losses: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    offset = 0
    for number, (stage, values) in enumerate(losses.items()):
        if number:
            ax.axvline(offset + 0.5, color="grey", linestyle="--", linewidth=0.8)
            ax.annotate(f"{stage.split(':')[0]} starts", (offset + 0.5, 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -12), textcoords="offset points", fontsize=8, color="grey")
        ax.plot(range(offset + 1, offset + len(values) + 1), values, label=stage, linewidth=0.8)
        offset += len(values)
    ax.set_xlabel("optimizer step (both stages in sequence)")
    ax.set_ylabel("training loss per supervised token")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("vlmkit CPU demo")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- main
def run_demo(out: str | os.PathLike = "output/demo", seed: int = 0, quick: bool = False,
             size: DemoSize | None = None, workers: int = 1, threads: int | None = None,
             overwrite: bool = False) -> dict[str, Any]:
    """Run everything; returns (and writes to ``out/results.json``) the figures.

    ``threads``: torch threads of the training and evaluation process (None: :func:`default_threads`).
    ``overwrite``: replace a run of other settings in ``out`` (otherwise :class:`DemoError`)."""
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads())
    try:
        return _run(Path(out).resolve(), seed, size or SIZES["quick" if quick else "full"], workers, overwrite)
    finally:
        torch.set_num_threads(previous_threads)


def prepare_output(out: Path, seed: int, size: DemoSize, overwrite: bool) -> None:
    """Refuse an output folder holding a run of other settings (unless ``overwrite``: then delete the demo's
    outputs there); and remove the previous run's figures, so that a failed rerun never leaves them
    looking current."""
    from vlmkit.demo.synthetic import SyntheticVideoGenerator
    from vlmkit.demo.synthetic.writer import params_differences

    differences = params_differences(out / "data", SyntheticVideoGenerator(**GENERATOR), size.train_videos,
                                     size.test_videos, seed)
    if differences and not overwrite:
        raise DemoError(f"{out} holds a demo run with other settings ({differences}); pass --out DIR for a "
                        "separate folder, or --overwrite to replace it")
    for name in RUN_OUTPUTS if overwrite else ("results.json", "training_loss.png"):
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _run(out: Path, seed: int, size: DemoSize, workers: int, overwrite: bool) -> dict[str, Any]:
    import torch

    from vlmkit.demo.synthetic import ensure_synthetic_dataset

    prepare_output(out, seed, size, overwrite)
    data = out / "data"
    clock = Clock()
    manifest = clock.run("data", ensure_synthetic_dataset, data, train=size.train_videos, test=size.test_videos,
                         seed=seed, workers=2, overwrite=overwrite, progress=True, **GENERATOR)
    shards = manifest["shard_pattern"]
    common = [f"run.seed={seed}", f"run.batch_size={size.batch_size}", f"run.num_workers={workers}",
              f"run.scheduler.warmup_steps={size.warmup_steps}", *size.model_overrides]
    stage1 = clock.run("stage 1 (captions)", train_stage, STAGE1, [
        *common, f"datasets.train.root={data}", f"datasets.train.shards={shards}",
        f"run.max_steps={size.stage1_steps}", f"run.output_dir={out / 'stage1'}"])
    stage2 = clock.run("stage 2 (instructions)", train_stage, STAGE2, [
        *common, f"datasets.train.ann_path={data / 'train_conversations.json'}", f"datasets.train.media_root={data}",
        f"run.max_steps={size.stage2_steps}", f"run.output_dir={out / 'stage2'}",
        f"model.init_weights=[{{path: {stage1['last_checkpoint']}}}]"])  # stage 2 starts from stage 1
    paths = [f"datasets.{key}.{field}={data / name if field == 'ann_path' else data}"
             for key, name in (("mc", "test_mc.json"), ("mc_generated", "test_mc.json"),
                               ("open_qa", "test_open_qa.json"),
                               ("captions", "test_captions.json")) for field in ("ann_path", "media_root")]
    # Earlier predictions are reused only when made by exactly these weights, configs and data (the evaluation's
    # fingerprint); any others (an earlier run's) are recomputed, never reported.
    evaluation = clock.run("evaluation", evaluate_stage, [
        *paths, f"evaluation.checkpoint={stage2['last_checkpoint']}", f"evaluation.output_dir={out / 'eval'}",
        f"evaluation.seed={seed}", f"evaluation.num_workers={workers}", "evaluation.on_stale_predictions=recompute",
        *size.model_overrides])

    predictions = out / "eval" / "predictions"
    mc = mc_summary(evaluation["datasets"]["mc"], predictions / "mc.jsonl")
    mc_generated = mc_summary(evaluation["datasets"]["mc_generated"], predictions / "mc_generated.jsonl")
    losses = {"stage 1: caption tokens": stage1["losses"], "stage 2: answer tokens": stage2["losses"]}
    plot_losses(losses, out / "training_loss.png")
    total = {"wall_s": round(sum(p["wall_s"] for p in clock.phases.values()), 1),
             "cpu_s": round(sum(p["cpu_s"] for p in clock.phases.values()), 1)}
    results = {"seed": seed, "size": asdict(size), "torch_threads": torch.get_num_threads(),
               "multiple_choice": mc, "multiple_choice_generated": mc_generated,
               "evaluation": {k: v for k, v in evaluation.items() if k != "config"},
               "timing": {**clock.phases, "total": total},
               "loss": {stage: {"first": v[0], "last": v[-1], "steps": len(v)} for stage, v in losses.items()},
               "chance": {"multiple_choice": 0.25}}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print("\n" + results_table(mc, evaluation, mc_generated))
    print(f"\ntime: {total['wall_s']} s wall, {total['cpu_s']} s CPU; loss plot {out / 'training_loss.png'}; "
          f"figures {out / 'results.json'}")
    return results


def main(argv: list[str] | None = None) -> int:
    from vlmkit.errors import VlmkitError

    parser = argparse.ArgumentParser(prog="python -m vlmkit.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="output/demo", help="output directory (data, runs, plot, results)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the initialisation and the order")
    parser.add_argument("--quick", action="store_true",
                        help="a small version (about 3 minutes on 2 CPU cores; learning, not final figures)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a demo run of other settings (seed, size) in --out")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers decoding videos")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the training and evaluation process (default: 2, 1 on one core)")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be 1 or more, got {args.threads}")
    try:
        run_demo(args.out, args.seed, args.quick, workers=args.workers, threads=args.threads,
                 overwrite=args.overwrite)
    except (DemoError, VlmkitError) as err:  # expected situations: one line, no traceback
        print(f"demo: {err}", file=sys.stderr)
        return 2
    return 0
