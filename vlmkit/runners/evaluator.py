"""The evaluation runner: load a trained checkpoint, predict every dataset with its task, score, report.

Output directory::

    config.yaml                          the resolved evaluation config
    predictions/<dataset>/rank<R>.jsonl  records appended (and flushed) batch by batch, per process
    predictions/<dataset>.jsonl          all records merged by rank 0, sorted by id
    <dataset>/                           task artefacts (a needle grid's JSON and heat map)
    results.json                         config, checkpoint, metrics per dataset and overall

Resume: a rerun reads every ``rank*.jsonl`` of a dataset and skips the samples found there (a torn last
line is ignored and recomputed), but only predictions this run would have made: every record carries the
digest of the run's fingerprint (``provenance``: weights, model config, generation settings, prompt template,
data files) and the hash of its sample's content.  Earlier records of another fingerprint, or of a sample whose
content changed, are refused with a diff, or with ``on_stale_predictions: recompute`` replaced.  When a dataset
offers ``sample_id(index) -> str``, finished samples are not even loaded (their content is then vouched for
by the data files' hashes only); otherwise they are dropped from the collated batch before the model runs.
The files must lie on a file system every rank sees (one node under torchrun does).

Distributed: the samples still to do are dealt round-robin to the ranks (torchrun; gloo on CPU); each rank
appends its records to its own file, and rank 0 merges and scores after a barrier.
"""
from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Optional, Union

import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import RUNNERS, TASKS, Registry
from vlmkit.runners import distributed, provenance
from vlmkit.runners.bad_samples import BadSampleBook
from vlmkit.runners.batches import DeviceFeed, feed_settings
from vlmkit.runners.context import RunContext
from vlmkit.runners.feature_cache import attach as attach_feature_cache
from vlmkit.runners.provenance import StalePredictionsError
from vlmkit.runners.train_data import collate_fn_of
from vlmkit.runners.trained_model import load_trained
from vlmkit.runners.workers import check_num_workers, resolve_num_workers
from vlmkit.schema import Component, ComponentList, ComponentMap, NonNegative, Positive, Runtime

RESULTS_NAME = "results.json"


# ---------------------------------------------------------------------------------------------- predictions files
def read_records(path: Path) -> list[dict]:
    """Records of a JSON-lines file; a torn last line (a crash mid-write) is ignored."""
    records = []
    lines = path.read_text().split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # the unterminated tail
                continue
            raise DataError(f"{path}:{number} is not a JSON record; delete the file to recompute it") from None
    return records


def repair_tail(path: Path) -> None:
    """Cut an unterminated last line so appended records start on a fresh line."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


class IndexedDataset(Dataset):
    """(index, sample) pairs, so a batch knows which dataset rows it holds."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return index, self.dataset[index]


class IndexedCollate:
    def __init__(self, collate):
        self.collate = collate

    def __call__(self, items):
        return [i for i, _ in items], self.collate([s for _, s in items])


def select_rows(batch: Any, rows: list[int]) -> Any:
    """The batch restricted to ``rows`` (tensors on dim 0, 'meta' by position, lists per branch)."""
    if isinstance(batch, torch.Tensor):
        return batch[rows]
    if isinstance(batch, Mapping):
        return {k: [v[r] for r in rows] if k == "meta" else select_rows(v, rows) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(select_rows(v, rows) for v in batch)
    return batch


def _fmt(value: float) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else f"{value:.4g}"


def generation_settings(**given: Any) -> dict[str, Any]:
    """The generation arguments of the evaluator (its constructor defaults under ``given``): what evaluation and
    ``vlmkit.load`` hand the model's ``generate``; temperature and top_p only when sampling."""
    params = RUNNERS.parameters("evaluator")
    value = {key: given.get(key, params[key].default) for key in GENERATION_KEYS}
    unknown = sorted(set(given) - set(GENERATION_KEYS))
    if unknown:
        raise ConfigError("generation", f"unknown settings {unknown}; accepted: {list(GENERATION_KEYS)}")
    if not value["do_sample"]:
        del value["temperature"], value["top_p"]
    return value


GENERATION_KEYS = ("max_new_tokens", "num_beams", "do_sample", "repetition_penalty", "temperature", "top_p")


@RUNNERS.register("evaluator")
class Evaluator:
    """Evaluate a (trained) model on every configured dataset with its task; resumable and distributed.

    ``tasks``: one task config for all datasets, or a mapping dataset key -> task config.  ``checkpoint``: a
    training run directory, its ``checkpoints`` directory or one checkpoint; its trainable tensors are loaded
    strictly, and its saved ``model`` config must equal the evaluation's (sampling, preprocessing, template,
    ``pretrained`` paths, ``init_weights``...) unless ``allow_config_mismatch`` (keys under ``ignore_model_keys``
    are not compared); the weight files the run was trained from must have the hashes its manifest records unless
    ``allow_changed_weights`` (``trained_model``: checked before the model is built, recorded in results.json).
    When the config has no model section, the run's saved ``imports`` are imported only with
    ``trust_checkpoint_imports``.  Generation settings apply to every task (a task may override max_new_tokens).  ``resume: false`` deletes earlier predictions;
    ``on_stale_predictions``: ``refuse`` (default) or ``recompute`` earlier predictions this run did not make.
    ``max_bad_fraction``: stop when a dataset's share of bad samples goes over it; each run lists (in
    ``<output_dir>/<dataset>/bad_samples.json``) only the bad samples it met itself. ``feature_cache``: a folder
    ``vlmkit cache-features`` wrote, read instead of decoding and encoding when it matches (docs/feature_cache.md).
    """

    purpose = "eval"  # the entry point it serves (config validation checks the section)

    def __init__(
        self, *,
        tasks: Union[Component("tasks"), ComponentMap("tasks")],
        checkpoint: Optional[str] = None,
        allow_config_mismatch: bool = False,
        allow_changed_weights: bool = False,
        trust_checkpoint_imports: bool = False,  # read by config loading (vlmkit.config), before any import
        ignore_model_keys: list[str] = (),
        splits: Optional[list[str]] = None,
        max_new_tokens: Positive[int] = 32,
        num_beams: Positive[int] = 1,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        batch_size: Positive[int] = 8,
        num_workers: Union[NonNegative[int], Literal["auto"]] = "auto",
        precision: Literal["fp32", "bf16", "fp16"] = "fp32",
        seed: int = 42,
        resume: bool = True,
        on_stale_predictions: Literal["refuse", "recompute"] = "refuse",
        max_bad_fraction: Optional[NonNegative[float]] = None,
        feature_cache: Optional[str] = None,
        device: Optional[str] = None,
        loggers: ComponentList("loggers") = ("console",),
        output_dir: str = "output/eval",
        model: Runtime[torch.nn.Module],
        datasets: Runtime[dict],
        config: Runtime[Optional[dict]] = None,
    ):
        for key, value in (("batch_size", batch_size), ("max_new_tokens", max_new_tokens), ("num_beams", num_beams)):
            if value < 1:
                raise ConfigError(f"evaluation.{key}", f"must be >= 1, got {value}")
        if max_bad_fraction is not None and not 0 <= max_bad_fraction <= 1:
            raise ConfigError("evaluation.max_bad_fraction", f"must be within [0, 1] (or null), got {max_bad_fraction}")
        check_num_workers(num_workers, "evaluation.num_workers")
        self.splits = list(splits) if splits is not None else list(datasets)
        unknown = [s for s in self.splits if s not in datasets]
        if unknown:
            raise ConfigError("evaluation.splits", f"{unknown} are not datasets of this config; "
                                                   f"datasets: {sorted(datasets)}")
        self.batch_size, self.num_workers, self.resume = batch_size, num_workers, resume
        self.on_stale_predictions = on_stale_predictions
        self.config = config
        self.generation = generation_settings(max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=do_sample,
                                              temperature=temperature, top_p=top_p,
                                              repetition_penalty=repetition_penalty)

        self.ctx = RunContext(section="evaluation", output_dir=output_dir, device=device, seed=seed,
                              precision=precision, loggers=loggers, config=config)
        self.env, self.device, self.output_dir = self.ctx.env, self.ctx.device, self.ctx.output_dir

        self.checkpoint: Optional[Path] = None
        self.weights_check: Optional[dict[str, Any]] = None  # what check_trained_model verified
        if checkpoint is not None:
            self.checkpoint = self._load_checkpoint(model, checkpoint, allow_config_mismatch, list(ignore_model_keys),
                                                    allow_changed_weights)
        self.feature_cache = None if feature_cache is None else attach_feature_cache(
            feature_cache, model, datasets, self.splits, model_config=(config or {}).get("model"),
            precision=precision, section="evaluation", say=self.ctx.say)
        self.model = model.to(self.device).eval()
        self.datasets = datasets
        self.tasks = self._build_tasks(tasks)
        self.fingerprints = self._fingerprints(seed, precision)
        self.digests = {key: provenance.digest(fp) for key, fp in self.fingerprints.items()}
        self.current_samples: dict[str, dict[str, str]] = {}  # dataset -> id -> sample hash seen in this run
        self.skipped_batches: dict[str, int] = {}  # batches with no usable sample, per dataset (this rank)
        # each dataset lists its bad samples next to its task artefacts; only this run's: a rerun reads every
        # sample without a prediction again
        self.bad_samples = BadSampleBook(datasets, self.env, self.output_dir)
        self.bad_samples.prepare(self.splits, max_bad_fraction)
        self.bad_samples.start_fresh(self.splits)

    # ------------------------------------------------------------------ set-up
    def _load_checkpoint(self, model: torch.nn.Module, spec: str, allow_mismatch: bool, ignore: list[str],
                         allow_changed_weights: bool) -> Path:
        # checked before the build too (assemble); warnings said here
        path, self.weights_check = load_trained(model, spec, (self.config or {}).get("model"),
                                                allow_config_mismatch=allow_mismatch, ignore=ignore,
                                                allow_changed_weights=allow_changed_weights, say=self.ctx.say)
        return path

    def _build_tasks(self, tasks: Any) -> dict[str, Any]:
        plain = OmegaConf.to_container(tasks, resolve=True) if OmegaConf.is_config(tasks) else tasks
        one_for_all = isinstance(plain, str) or (isinstance(plain, Mapping) and any(k in plain for k in ("name", "type")))
        if one_for_all:
            configs = {key: plain for key in self.splits}
        else:
            if not isinstance(plain, Mapping):
                raise ConfigError("evaluation.tasks", f"expected a task config or a mapping dataset -> task config, "
                                                      f"got {plain!r}")
            unknown = sorted(set(plain) - set(self.datasets))
            missing = [key for key in self.splits if key not in plain]
            if unknown or missing:
                raise ConfigError("evaluation.tasks", f"tasks must name exactly the evaluated datasets: no dataset "
                                                      f"{unknown}, no task for {missing} (datasets: {self.splits})")
            configs = {key: plain[key] for key in self.splits}
        self.task_configs = configs
        self.task_names = {key: TASKS.canonical(Registry.name_of(cfg, f"evaluation.tasks.{key}"))
                           for key, cfg in configs.items()}
        return {key: TASKS.build_offering(cfg, f"evaluation.tasks.{key}", generation=dict(self.generation),
                                          output_dir=str(self.output_dir / key))
                for key, cfg in configs.items()}

    def _fingerprints(self, seed: int, precision: str) -> dict[str, dict[str, Any]]:
        """Per dataset, what its predictions depend on (``provenance``): weights, model, generation, data."""
        config = self.config or {}
        model_config = config.get("model")
        weights = provenance.weights_of(self.checkpoint, model_config)
        prompt = provenance.prompt_of(self.model)
        generation = {**self.generation, "precision": precision}
        return {key: provenance.fingerprint(
                    weights=weights, model_config=model_config, seed=seed, generation=generation,
                    task_config=self.task_configs[key], prompt=prompt,
                    data=provenance.data_of((config.get("datasets") or {}).get(key), self.datasets[key]))
                for key in self.splits}

    # ------------------------------------------------------------------ predictions
    def _shard_dir(self, key: str) -> Path:
        return self.output_dir / "predictions" / key

    def _finished_records(self, key: str) -> list[dict]:
        shard_dir = self._shard_dir(key)
        return [r for path in sorted(shard_dir.glob("rank*.jsonl")) for r in read_records(path)]

    def _reusable(self, key: str) -> tuple[Optional[str], dict[str, list[str]]]:
        """Rank 0: (a refusal message or None, id -> sample hashes of the records this run may reuse).

        Records of another fingerprint are refused, or under ``on_stale_predictions: recompute`` deleted."""
        shard_dir, current = self._shard_dir(key), self.digests[key]
        files = {path: read_records(path) for path in sorted(shard_dir.glob("rank*.jsonl"))}
        stale = [r for records in files.values() for r in records if r.get("fingerprint") != current]
        if stale and self.on_stale_predictions == "refuse":
            total = sum(len(records) for records in files.values())
            return provenance.stale_message(shard_dir, stale, total, self.fingerprints[key]), {}
        if stale:
            self.ctx.say(f"{key}: recomputing {len(stale)} predictions made by a different run")
            for path, records in files.items():
                provenance.rewrite_records(path, [r for r in records if r.get("fingerprint") == current])
        provenance.write_fingerprint(shard_dir, current, self.fingerprints[key])
        done: dict[str, list[str]] = {}
        for record in (r for records in files.values() for r in records if r.get("fingerprint") == current):
            done.setdefault(str(record["id"]), []).append(record.get("sample_hash"))
        return None, done

    def _todo(self, key: str, dataset: Dataset, done: Mapping[str, Any]) -> tuple[list[int], bool]:
        """Dataset indices still to predict (all of them when ids are only known after loading)."""
        sample_id = getattr(dataset, "sample_id", None)
        if sample_id is None:
            return list(range(len(dataset))), False
        ids = [str(sample_id(i)) for i in range(len(dataset))]
        if len(set(ids)) != len(ids):
            repeated = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise DataError(f"dataset '{key}': sample ids repeat ({repeated}...); resuming needs unique ids")
        return [i for i, sid in enumerate(ids) if sid not in done], True

    def _unfinished_rows(self, key: str, metas: list[dict], done: Mapping[str, list[str]]) -> list[int]:
        """Rows of a loaded batch to predict: new ids, and (under ``recompute``) samples whose content changed
        since their prediction; a changed sample is refused otherwise."""
        hashes = [provenance.sample_hash(m) for m in metas]
        seen = self.current_samples.setdefault(key, {})
        seen.update((str(m["id"]), h) for m, h in zip(metas, hashes))
        changed = [m for m, h in zip(metas, hashes) if str(m["id"]) in done and h not in done[str(m["id"])]]
        if changed and self.on_stale_predictions == "refuse":
            earlier = {str(r["id"]): r for r in self._finished_records(key)
                       if r.get("fingerprint") == self.digests[key]}
            raise StalePredictionsError(provenance.changed_samples_message(
                self._shard_dir(key), [(earlier.get(str(m["id"]), {}), m) for m in changed]))
        return [r for r, (m, h) in enumerate(zip(metas, hashes)) if h not in done.get(str(m["id"]), ())]

    def predict(self, key: str) -> int:
        """Predict this rank's share of the unfinished samples of one dataset; returns how many it wrote."""
        dataset, task = self.datasets[key], self.tasks[key]
        shard_dir = self._shard_dir(key)
        own_file = shard_dir / f"rank{self.env.rank:03d}.jsonl"
        if self.env.is_main:
            shard_dir.mkdir(parents=True, exist_ok=True)
        distributed.barrier()
        repair_tail(own_file)
        distributed.barrier()
        refusal, done = distributed.broadcast_object(self._reusable(key) if self.env.is_main else None)
        if refusal:
            raise StalePredictionsError(refusal)
        todo, known_ids = self._todo(key, dataset, done)
        shard = todo[self.env.rank::self.env.world_size]
        self.ctx.say(f"{key}: {len(done)} samples predicted earlier with this fingerprint (same weights, configs "
                     f"and data) reused, {len(todo) if known_ids else 'up to ' + str(len(todo))}"
                     f" to do on {self.env.world_size} process(es)")
        if not shard:
            return 0
        workers = resolve_num_workers(self.num_workers, len(shard), "evaluation.num_workers")
        feed = feed_settings(self.device, workers)  # pinned on CUDA; the next batch copied ahead with workers
        loader = DataLoader(IndexedDataset(dataset), batch_size=self.batch_size, sampler=shard, num_workers=workers,
                            collate_fn=IndexedCollate(collate_fn_of(dataset)), pin_memory=feed["pin_memory"])
        batches = DeviceFeed(iter(loader), self.device, feed["prefetch"])
        written = 0
        # progress on stderr, on rank 0, and only on a terminal (disable=None)
        bar = tqdm(batches, total=len(loader), desc=f"evaluate {key}", unit="batch", file=sys.stderr,
                   dynamic_ncols=True, disable=None if self.env.is_main else True)
        with open(own_file, "a", encoding="utf-8") as out, torch.no_grad():
            for _, batch in bar:
                _, on_device = batches.take()  # the batch on the device
                batches.fetch_ahead()  # the next batch's copy overlaps this one's compute
                if batch is None:  # the dataset skipped every sample of it (on_bad_sample: skip)
                    self.skipped_batches[key] = self.skipped_batches.get(key, 0) + 1
                    continue
                keep = self._unfinished_rows(key, batch["meta"], {} if known_ids else done)
                if not keep:
                    continue
                if len(keep) < len(batch["meta"]):
                    batch, on_device = select_rows(batch, keep), select_rows(on_device, keep)
                hashes = {str(m["id"]): provenance.sample_hash(m) for m in batch["meta"]}
                with self.ctx.autocast():
                    records = task.valid_step(self.model, on_device)
                for record in records:  # what produced it, and from which sample content
                    record.update(fingerprint=self.digests[key], sample_hash=hashes.get(str(record.get("id"))))
                out.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
                out.flush()
                written += len(records)
        return written

    def merged_records(self, key: str, current: Optional[Mapping[str, str]] = None) -> list[dict]:
        """Every record of this run's fingerprint once (the first one written per id), sorted by id; with
        ``current`` (id -> sample hash seen in this run), only records of that sample content."""
        unique: dict[str, dict] = {}
        for record in self._finished_records(key):
            rid = str(record["id"])
            if record.get("fingerprint") != self.digests[key]:
                continue
            if current and rid in current and record.get("sample_hash") != current[rid]:
                continue  # the sample changed since (recomputed under on_stale_predictions: recompute)
            unique.setdefault(rid, record)
        return [unique[i] for i in sorted(unique)]

    # ------------------------------------------------------------------ the run
    def evaluate(self) -> dict[str, Any]:
        """Predict and score every dataset; returns the results (on every rank) and writes results.json."""
        if not self.resume:
            if self.env.is_main:
                for key in self.splits:
                    for path in [*self._shard_dir(key).glob("rank*.jsonl"),
                                 *self._shard_dir(key).glob(provenance.FINGERPRINT_GLOB)]:
                        path.unlink()
            distributed.barrier()
        per_dataset: dict[str, Any] = {}
        for key in self.splits:
            self.predict(key)
            skipped = sum(d.get(key, 0) for d in distributed.gather_objects([self.skipped_batches]))
            current: dict[str, str] = {}
            for seen in distributed.gather_objects([self.current_samples.get(key, {})]):
                current.update(seen)
            self.bad_samples.settle([key])
            if self.env.is_main:
                per_dataset[key] = self._score(key, current)
                per_dataset[key]["skipped_batches"] = skipped
                bad = self.bad_samples.counts([key])
                if key in bad:
                    per_dataset[key]["bad_samples"] = bad[key]
        results = None
        if self.env.is_main:
            results = {"config": self.config, "checkpoint": str(self.checkpoint) if self.checkpoint else None,
                       "weights_check": self.weights_check,
                       "world_size": self.env.world_size, "generation": self.generation,
                       "datasets": per_dataset, "overall": self._overall(per_dataset)}
            tmp = self.output_dir / f".{RESULTS_NAME}.tmp"
            tmp.write_text(json.dumps(results, indent=2, default=str))
            os.replace(tmp, self.output_dir / RESULTS_NAME)
            self.ctx.say(self.table(results))
        results = distributed.broadcast_object(results)
        distributed.barrier()
        self.ctx.close_loggers()
        return results

    def _score(self, key: str, current: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
        records = self.merged_records(key, current)
        merged = self.output_dir / "predictions" / f"{key}.jsonl"
        merged.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        task = self.tasks[key]
        entry: dict[str, Any] = {"task": self.task_names[key], "dataset_size": len(self.datasets[key]),
                                 "num_predictions": len(records), "predictions": str(merged),
                                 "fingerprint": {"digest": self.digests[key], **self.fingerprints[key]}}
        if not records:
            entry["metrics"] = {}
            entry["error"] = "no predictions (every sample was skipped?)"
            return entry
        metrics = task.evaluate(records)
        entry["metrics"] = metrics
        headline = task.headline(metrics) if hasattr(task, "headline") else None
        if headline is not None:
            entry["primary"] = {"name": headline[0], "value": headline[1]}
        judges = {k: v for k, v in metrics.items() if k.split("/")[-1].startswith("judge.")}
        if judges:
            entry["judge"] = judges
        return entry

    @staticmethod
    def _overall(per_dataset: dict[str, Any]) -> dict[str, float]:
        """Per primary metric name, the mean over the datasets reporting it (accuracy over MC sets, ...)."""
        groups: dict[str, list[float]] = {}
        for entry in per_dataset.values():
            if "primary" in entry:
                groups.setdefault(entry["primary"]["name"], []).append(entry["primary"]["value"])
        overall = {name: sum(v) / len(v) for name, v in groups.items()}
        no_answer = [e["metrics"]["num_no_answer"] for e in per_dataset.values()
                     if isinstance(e.get("metrics", {}).get("num_no_answer"), (int, float))]
        if no_answer:  # an accuracy is never shown without its count of answers that named no option
            overall["num_no_answer"] = float(sum(no_answer))
        overall["num_datasets"] = float(len(per_dataset))
        return overall

    @staticmethod
    def table(results: dict[str, Any]) -> str:
        rows = [("dataset", "task", "metric", "value")]
        for key, entry in results["datasets"].items():
            for name, value in entry["metrics"].items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append((key, entry["task"], name, _fmt(float(value))))
            for name, value in entry.get("judge", {}).items():
                if isinstance(value, str):
                    rows.append((key, entry["task"], name, value))
        for name, value in results["overall"].items():
            rows.append(("overall", "", name, _fmt(value)))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)
