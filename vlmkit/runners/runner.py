"""The training runner: the loop, its cadences (log, evaluate, save) and exact resume.

One optimizer step draws ``grad_accum_steps`` micro-batches; all but the last run under the strategy's
``no_sync``.  Progress is counted in optimizer steps (``global_step``) and, inside an epoch, in micro-batches
consumed, which is what a checkpoint records as the data position (a streaming dataset's own ``state_dict``
is saved too; see ``train_data``).  A micro-batch a dataset skipped entirely (None) is left out without
desynchronising the ranks (see ``skipping``); dataset hooks (``set_epoch``, ``set_output_dir``,
``write_bad_samples``) are called when a dataset has them.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Optional, Union

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from vlmkit.data.packing_settings import PackingSettings
from vlmkit.dtypes import Precision
from vlmkit.errors import ConfigError, DataError, VlmkitError
from vlmkit.models.weight_sources import format_report
from vlmkit.registry import OPTIMIZERS, RUNNERS, SCHEDULERS, STRATEGIES, TASKS
from vlmkit.runners import checkpoint as ckpt
from vlmkit.runners import distributed, sanity, trained_model
from vlmkit.runners.bad_samples import BadSampleBook
from vlmkit.runners.batches import move_to
from vlmkit.runners.context import RunContext
from vlmkit.runners.feature_cache import attach as attach_feature_cache
from vlmkit.runners.log_window import LogWindow
from vlmkit.runners.packing import packing_for
from vlmkit.runners.rng import capture_rng, restore_rng, seed_everything
from vlmkit.runners.sampler import ResumableSampler
from vlmkit.runners.skipping import StepPlan, plan_step, stand_in_forward
from vlmkit.runners.train_data import TrainData, collate_fn_of, is_stream
from vlmkit.runners.trainer_rules import trainer_config_problems
from vlmkit.runners.workers import resolve_num_workers
from vlmkit.schema import Component, ComponentList, NonNegative, Positive, Runtime, Struct


class TrainingError(VlmkitError, RuntimeError):
    """Training cannot go on (a non-finite loss), with the step and batch that caused it."""


@RUNNERS.register("trainer")
class Trainer:
    """Epoch- or step-based training with accumulation, mixed precision, evaluation and exact resume.

    Set exactly one of ``max_epochs`` / ``max_steps``. ``eval_every`` / ``save_every`` count optimizer
    steps; left unset they fall at the end of every epoch (epoch-based) or at the end (step-based).
    ``batch_size`` is per process and per micro-batch. ``resume_from``: a checkpoint path, 'latest'
    (must exist) or 'auto' (the newest intact one, if any). ``max_bad_fraction``: stop the run when the share of
    bad samples of a dataset goes over it (per process as it reads, and over the whole run at the end); the
    bad-sample list starts empty on a fresh start and continues on a resume.
    ``group_by_length``: batches of samples of similar text
    length, less padding (see ``length_grouping``; map-style datasets only). ``loss_normalization``: 'token'
    (the step's loss is its summed token losses over every micro-batch and rank divided by its supervised
    tokens, so layout, accumulation and world size never change the objective) or 'sample' (the mean of
    micro-batch means, as recipes written for that objective define it; see docs/training.md).
    ``packing``: {max_length}: each micro-batch's conversations packed into rows of at most max_length tokens,
    attention confined to each conversation (same samples and supervised tokens, less padding; docs/training.md).
    ``feature_cache``: a folder ``vlmkit cache-features`` wrote; the frozen modules' outputs are read from it instead
    of decoding videos and running them, after checking it was built for this model and sampling
    (docs/feature_cache.md).
    """

    purpose = "train"  # the entry point it serves (config validation checks the section)

    config_problems = classmethod(trainer_config_problems)  # light module: validation runs it without torch

    def __init__(
        self, *,
        scheduler: Component("schedulers"),
        optimizer: Component("optimizers") = "adamw",
        task: Component("tasks") = "language_modeling",
        strategy: Component("strategies") = "ddp",
        loggers: ComponentList("loggers") = ("console", "jsonl"),
        train_splits: list[str] = ("train",),
        valid_splits: list[str] = (),
        max_epochs: Optional[Positive[int]] = None,
        max_steps: Optional[Positive[int]] = None,
        batch_size: Positive[int] = 1,
        eval_batch_size: Optional[Positive[int]] = None,
        grad_accum_steps: Positive[int] = 1,
        clip_grad_norm: Optional[Positive[float]] = None,
        precision: Precision = "fp32",
        seed: int = 42,
        shuffle: bool = True,
        group_by_length: bool = False,
        packing: Optional[Struct(PackingSettings)] = None,
        num_workers: Union[NonNegative[int], Literal["auto"]] = "auto",
        log_every: Positive[int] = 10,
        eval_every: Optional[Positive[int]] = None,
        save_every: Optional[Positive[int]] = None,
        keep_last: Optional[NonNegative[int]] = 2,
        resume_from: Optional[str] = None,
        monitor: Optional[str] = None,
        monitor_mode: Literal["max", "min"] = "min",
        nonfinite_loss: Literal["raise", "skip"] = "raise",
        loss_normalization: Literal["token", "sample"] = "token",
        save_on_signal: bool = True,
        max_bad_fraction: Optional[NonNegative[float]] = None,
        feature_cache: Optional[str] = None,
        device: Optional[str] = None,
        model: Runtime[torch.nn.Module],
        datasets: Runtime[dict],
        output_dir: str = "output/run",
        config: Runtime[Optional[dict]] = None,
    ):
        self._check_settings(dict(max_epochs=max_epochs, max_steps=max_steps, monitor=monitor,
                                  valid_splits=valid_splits, max_bad_fraction=max_bad_fraction,
                                  batch_size=batch_size, grad_accum_steps=grad_accum_steps, log_every=log_every,
                                  eval_every=eval_every, save_every=save_every))
        self.max_bad_fraction = max_bad_fraction
        self.max_epochs, self.max_steps = max_epochs, max_steps
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.grad_accum_steps, self.clip_grad_norm = grad_accum_steps, clip_grad_norm
        self.precision, self.seed, self.shuffle, self.num_workers = precision, seed, shuffle, num_workers
        self.log_every, self.eval_every, self.save_every, self.keep_last = log_every, eval_every, save_every, keep_last
        self.resume_from, self.monitor, self.monitor_mode = resume_from, monitor, monitor_mode
        self.nonfinite_loss, self.save_on_signal = nonfinite_loss, save_on_signal
        self.loss_normalization = loss_normalization
        self.train_splits, self.valid_splits = list(train_splits), list(valid_splits)
        self.config = config

        # Processes and devices first (the strategy joins the process group): everything below may use collectives.
        self.strategy = STRATEGIES.build(strategy, "run.strategy")
        self.ctx = RunContext(section="run", output_dir=output_dir, device=device, seed=seed, precision=precision,
                              loggers=loggers, config=config, join=self.strategy.setup)
        self.env, self.device, self.output_dir = self.ctx.env, self.ctx.device, self.ctx.output_dir

        self.task = TASKS.build(task, "run.task")
        self.datasets = datasets
        self.feature_cache = None if feature_cache is None else attach_feature_cache(
            feature_cache, model, datasets, [*self.train_splits, *self.valid_splits],
            model_config=(config or {}).get("model"), precision=precision, section="run", say=self.ctx.say)
        self.bad_samples = BadSampleBook(datasets, self.env, self.output_dir)
        self._set_up_data(group_by_length, packing_for(model, packing))
        self._set_up_optimization(model, optimizer, scheduler)
        self.global_step = 0
        self.epoch = 0
        self.batches_in_epoch = 0
        self.best: Optional[float] = None
        self.skipped_steps = 0
        self.skipped_batches = 0  # micro-batches whose samples a dataset skipped entirely (this rank)
        self.empty_steps = 0      # steps without any micro-batch on any rank (no optimizer step)
        self.eval_skipped_batches: dict[str, int] = {}
        self.losses: list[float] = []
        self.last_checkpoint: Optional[Path] = None
        self._stop_signal: Optional[int] = None
        self._last_saved_step = -1
        self._last_eval_step = -1
        self._reported = False  # the start-up report has been made (with the first real batch)
        self.log_window = LogWindow(samples_per_step=batch_size * grad_accum_steps * self.env.world_size)

    # ------------------------------------------------------------------ set-up
    def _check_settings(self, values: dict[str, Any]) -> None:
        """The rules across fields (``config_problems``), and every count at least 1."""
        problems = self.config_problems(values, "run")
        if problems:
            raise problems[0]
        optional = ("max_epochs", "max_steps", "eval_every", "save_every")  # None: unset
        for key in ("batch_size", "grad_accum_steps", "log_every", *optional):
            value = (values[key] or 1) if key in optional else values[key]
            if value < 1:
                raise ConfigError(f"run.{key}", f"must be >= 1, got {value}")

    def _set_up_data(self, group_by_length: bool, packing: Optional[Any] = None) -> None:
        """The training batches of this process and the run's length in optimizer steps."""
        self.dataset_sizes = sanity.check_dataset_sizes(self.datasets, [*self.train_splits, *self.valid_splits])
        self.train_set = self._train_dataset()
        self.data = TrainData(self.train_set, self.env, batch_size=self.batch_size,
                              grad_accum_steps=self.grad_accum_steps, shuffle=self.shuffle, seed=self.seed,
                              num_workers=self.num_workers, group_by_length=group_by_length, packing=packing,
                              pin_memory=self.device.type == "cuda")
        self.data.feed_to(self.device)
        self.sampler = self.data.sampler
        self.batches_per_epoch = self.data.batches_per_epoch
        self.steps_per_epoch = self.data.estimated_steps_per_epoch  # an estimate for a stream
        if self.steps_per_epoch == 0:
            raise DataError(f"the training data ({len(self.train_set)} records over {self.env.world_size} "
                            f"process(es)) is smaller than one optimizer step (batch_size {self.batch_size} x "
                            f"grad_accum_steps {self.grad_accum_steps})")
        if self.steps_per_epoch is None and self.max_steps is None:
            raise ConfigError("run.max_epochs", "the streaming training dataset has no length, so the number of "
                                                "steps of an epoch is unknown; set run.max_steps instead")
        self.total_steps = self.max_steps if self.max_steps is not None else self.max_epochs * self.steps_per_epoch

    def _set_up_optimization(self, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> None:
        """The model wrapped by the strategy on the device, its optimizer, scheduler, grad scaler (fp16) and the
        checkpoint writer."""
        self.raw_model = model
        # every weight source the model was built from, hashed once per run, into each checkpoint's manifest
        self.weight_record = trained_model.record_sources((self.config or {}).get("model"), model) \
            if self.env.is_main else None
        self.module_report = sanity.trainable_by_module(model)
        self.model = self.strategy.wrap(model, self.device)  # the strategy moves it (FSDP: shards first)
        self.optimizer = self.strategy.create_optimizer(OPTIMIZERS.build(optimizer, "run.optimizer"), self.model)
        self.scheduler = SCHEDULERS.build(scheduler, "run.scheduler", optimizer=self.optimizer,
                                          total_steps=self.total_steps,
                                          steps_per_epoch=self.steps_per_epoch or self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        self.writer = ckpt.CheckpointWriter(self.output_dir / "checkpoints", self.env, self.keep_last)

    # ------------------------------------------------------------------ data
    def _train_dataset(self) -> Dataset:
        parts = [self.datasets[s] for s in self.train_splits]
        if not parts:
            raise ConfigError("run.train_splits", "no training split given")
        if len(parts) > 1 and any(is_stream(p) for p in parts):
            raise ConfigError("run.train_splits", f"{self.train_splits}: a streaming dataset cannot be concatenated "
                                                  f"with others; combine them in one 'mixture' dataset instead")
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    def _eval_loader(self, split: str) -> DataLoader:
        dataset = self.datasets[split]
        size = None if is_stream(dataset) else len(dataset) // self.env.world_size
        common = {"batch_size": self.eval_batch_size,
                  "num_workers": resolve_num_workers(self.num_workers, size, "run.num_workers"),
                  "collate_fn": collate_fn_of(dataset), "generator": torch.Generator().manual_seed(self.seed)}
        if is_stream(dataset):  # each rank reads its own shards
            return DataLoader(dataset, **common)
        sampler = ResumableSampler(dataset, num_replicas=self.env.world_size, rank=self.env.rank, shuffle=False,
                                   seed=self.seed, drop_last=False)
        return DataLoader(dataset, sampler=sampler, **common)

    def _eval_batches(self, split: str) -> Iterator[tuple[Optional[Any], bool]]:
        """(batch or None, whether this rank has run out) until every rank has run out.  A sampler gives the
        ranks equal batch counts; streams do not, so for them the ranks agree on the end (one all-reduce)."""
        stream = is_stream(self.datasets[split])
        iterator, end = iter(self._eval_loader(split)), object()
        while True:
            batch = next(iterator, end)
            done = batch is end
            if not stream:
                if done:
                    return
            else:
                remaining = torch.tensor([0.0 if done else 1.0])
                if self.env.distributed:
                    remaining = distributed.all_reduce_tensor(remaining.to(self.device), "sum").cpu()
                if remaining.item() == 0:
                    return
            yield (None if done else batch), done

    # ------------------------------------------------------------------ reporting
    def _startup_report(self, first_batch: Any) -> dict:
        fraction = sanity.check_supervision(first_batch, "first training batch")
        report = {"world_size": self.env.world_size, "device": str(self.device),
                  "dataset_sizes": self.dataset_sizes, "parameters": self.module_report,
                  "trainable_parameters": sum(v["trainable"] for v in self.module_report.values()),
                  "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                  "supervised_fraction_first_batch": fraction,
                  "weight_sources": getattr(self.raw_model, "weight_sources", None)}
        if self.env.is_main:
            (self.output_dir / "startup_report.json").write_text(json.dumps(report, indent=2))
            lines = [f"  {top}: {c['trainable']:,} trainable / {c['frozen']:,} frozen"
                     for top, c in self.module_report.items()]
            sizes = ", ".join(f"{k}={v}" for k, v in self.dataset_sizes.items())
            supervised = "n/a (no labels)" if fraction is None else f"{fraction:.1%}"
            if report["weight_sources"]:  # where every component's values came from, random ones included
                lines += ["weight sources:", *format_report(report["weight_sources"])]
            self.ctx.say("parameters per module:\n" + "\n".join(lines) + f"\ndatasets: {sizes}; steps: "
                         f"{self.total_steps} ({self.steps_per_epoch}/epoch); supervised tokens in the first batch: "
                         f"{supervised}; processes: {self.env.world_size} on {self.device}")
        return report

    # ------------------------------------------------------------------ checkpoints
    def _progress_state(self) -> dict:
        return {"global_step": self.global_step, "epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch,
                "best": self.best, "skipped_steps": self.skipped_steps, "skipped_batches": self.skipped_batches,
                "empty_steps": self.empty_steps}

    def save_checkpoint(self, name: Optional[str] = None, metrics: Optional[dict] = None) -> Path:
        """Save a full checkpoint (collective: every rank must call it)."""
        trainer_state = {
            "optimizer": self.strategy.optimizer_state(self.model, self.optimizer),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "progress": self._progress_state(),
            "data": self.data.state(),  # per-rank stream positions (collective); None for map-style data
        }
        tensors = self.strategy.trainable_state(self.model)
        is_step = name is None
        path = self.writer.save(
            name or ckpt.step_dir_name(self.global_step), tensors=tensors, trainer_state=trainer_state,
            rng_state=capture_rng(), update_latest=is_step,
            manifest_extra={"progress": self._progress_state(), "metrics": metrics or {},
                            "config": self.config, "weight_sources": self.weight_record})
        if is_step:
            self.last_checkpoint = path
            self._last_saved_step = self.global_step
        self.ctx.say(f"saved checkpoint {path}")
        return path

    def _restore(self, path: Path) -> None:
        manifest = ckpt.read_manifest(path)
        # FSDP parameters are DTensors whose .shape is the global (unsharded) shape, as in the manifest.
        expected = ckpt.tensor_specs(dict(self.strategy.trainable_parameters(self.model)))
        diff = ckpt.manifest_diff(manifest["tensors"], expected)
        if diff:
            raise ckpt.CheckpointError(f"cannot resume from {path}: its tensors do not match the trainable "
                                       f"parameters of the model:\n" + "\n".join(diff))
        self.strategy.load_trainable_state(self.model, ckpt.load_tensors(path, manifest))
        state = ckpt.load_trainer_state(path)
        self.strategy.load_optimizer_state(self.model, self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None:
            if state["scaler"] is None:
                raise ckpt.CheckpointError(f"{path} was written without a grad scaler (precision was not fp16)")
            self.scaler.load_state_dict(state["scaler"])
        progress = state["progress"]
        self.global_step, self.epoch = progress["global_step"], progress["epoch"]
        self.batches_in_epoch, self.best = progress["batches_in_epoch"], progress["best"]
        self.skipped_steps = progress["skipped_steps"]
        self.skipped_batches = progress.get("skipped_batches", 0)
        self.empty_steps = progress.get("empty_steps", 0)
        same_world = manifest["world_size"] == self.env.world_size
        if not same_world and self.batches_in_epoch:
            raise ckpt.CheckpointError(f"{path} stopped mid-epoch with {manifest['world_size']} processes; resume "
                                       f"it with the same number (now {self.env.world_size})")
        if same_world:  # a new world size starts a fresh pass of a stream (checked above: at a boundary)
            self.data.load_state(state.get("data"), str(path))
        if self.data.epoch_is_over(self.batches_in_epoch):
            self.epoch, self.batches_in_epoch = self.epoch + 1, 0
        rng = ckpt.load_rng_state(path, self.env.rank)
        if rng is not None and same_world:
            restore_rng(rng)
        else:
            seed_everything(self.seed + self.env.rank + self.global_step)
        self._last_saved_step = self._last_eval_step = self.global_step
        self.ctx.say(f"resumed from {path} at step {self.global_step} (epoch {self.epoch}, "
                     f"{self.batches_in_epoch} batches into it)")

    # ------------------------------------------------------------------ the step
    def _loss_weight(self, plan: StepPlan, position: int) -> float:
        """What a real micro-batch's loss (a mean over its tokens) is multiplied by before backward.  Every
        strategy averages gradients over ranks, hence the factor world_size: 'token' gives
        sum(token losses) / step tokens, 'sample' the mean of the micro-batch means."""
        if self.loss_normalization == "sample":
            return 1.0 / plan.loss_divisor
        if plan.total_tokens <= 0:
            raise DataError(f"step {self.global_step}, epoch {self.epoch}: the step's micro-batches have no "
                            f"supervised token the loss can average over (loss_normalization: token)")
        return plan.tokens[position] * plan.world_size / plan.total_tokens

    def _train_step(self, micro_batches: list, plan: StepPlan) -> tuple[list[torch.Tensor], bool]:
        """Forward/backward the planned micro-batches; (each real micro-batch's share of the step loss, whether
        every loss incl. stand-ins is finite).  The shares of all ranks sum to the step's loss.  A stand-in's
        loss is multiplied by 0: it only keeps the ranks' collectives in step."""
        if not self.model.training:  # only evaluation leaves it in eval mode; train() walks every module
            self.model.train()
        shares, finite = [], True
        for index, position in enumerate(plan.positions):
            batch, real = stand_in_forward(plan, micro_batches[position])
            weight = self._loss_weight(plan, position) if real else 0.0
            last = index == len(plan.positions) - 1
            with (contextlib.nullcontext() if last else self.strategy.no_sync(self.model)):
                with self.ctx.autocast():
                    out = self.task.train_step(self.model, batch)
                loss = out["loss"]
                # x * 1.0 is x (and so is its gradient): one process without accumulation skips the multiply
                scaled = loss.float() if weight == 1.0 else loss.float() * weight
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            detached = loss.detach().float()
            if real:
                share = weight / plan.world_size
                shares.append(detached if share == 1.0 else detached * share)
            else:
                finite = finite and bool(torch.isfinite(detached))
        return shares, finite

    def _apply_gradients(self) -> Optional[float]:
        grad_norm = None
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.clip_grad_norm is not None:
            grad_norm = float(self.strategy.clip_grad_norm(self.model, self.clip_grad_norm))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _agree(self, shares: list[torch.Tensor], finite: bool) -> tuple[Optional[float], bool, bool]:
        """(the step's loss: the sum of every rank's shares, NaN when any loss was not finite, None when no rank
        had a real micro-batch; every loss is finite on every rank; a stop signal arrived on any rank): every rank
        decides the same.  The loss reaches the host once per step (one device sync), the values it needs with it."""
        local = (shares[0] if len(shares) == 1 else torch.stack(shares).sum()) if shares else None
        if not self.env.distributed:
            loss = None if local is None else local.item()
            finite = finite and (loss is None or math.isfinite(loss))
            return (loss if finite or loss is None else float("nan")), finite, bool(self._stop_signal)
        local = torch.zeros((), device=self.device) if local is None else local.to(self.device)
        ok = torch.isfinite(local)
        flags = torch.tensor([0.0 if finite else 1.0, 1.0 if self._stop_signal else 0.0, float(len(shares))],
                             device=self.device)
        sums = torch.stack([flags[0] + (~ok).float(), flags[1], torch.where(ok, local, torch.zeros_like(local)).float(),
                            flags[2]])
        not_finite, stops, loss, real = distributed.all_reduce_tensor(sums, "sum").tolist()
        finite = not_finite == 0
        loss = (loss if finite else float("nan")) if int(real) else None
        return loss, finite, stops > 0

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Evaluate every valid split; returns ``{'<split>/<metric>': value}`` on every rank."""
        self.model.eval()
        metrics: dict[str, float] = {}
        for split in self.valid_splits:
            records, skipped = [], 0
            for batch, done in self._eval_batches(split):
                plan = plan_step([batch], False, self.device)  # the forward may be a collective (FSDP, DDP buffers)
                skipped += batch is None and not done
                if not plan.positions:
                    continue
                run, real = stand_in_forward(plan, batch)
                with self.ctx.autocast():
                    out = self.task.valid_step(self.model, move_to(run, self.device))
                if real:
                    records.extend(out)
            if skipped:
                self.ctx.say(f"evaluation of '{split}': {skipped} batch(es) had no usable sample on rank "
                             f"{self.env.rank} and were skipped")
            self.eval_skipped_batches[split] = self.eval_skipped_batches.get(split, 0) + skipped
            records = distributed.gather_objects(records)
            split_metrics = self.task.evaluate(records) if self.env.is_main else None
            split_metrics = distributed.broadcast_object(split_metrics)
            metrics.update({f"{split}/{k}": float(v) for k, v in split_metrics.items()})
        self._last_eval_step = self.global_step
        return metrics

    def _evaluate_and_track(self) -> None:
        metrics = self.evaluate()
        self.ctx.log(self.global_step, {"epoch": self.epoch, **metrics})
        if self.monitor is None:
            return
        if self.monitor not in metrics:
            raise ConfigError("run.monitor", f"'{self.monitor}' is not among the evaluation metrics: "
                                             f"{', '.join(sorted(metrics))}")
        value = metrics[self.monitor]
        better = self.best is None or (value > self.best if self.monitor_mode == "max" else value < self.best)
        if better:
            self.best = value
            self.save_checkpoint("best", metrics)
            self.ctx.say(f"new best {self.monitor}={value:.6g} at step {self.global_step}")

    # ------------------------------------------------------------------ the loop
    def _on_signal(self, signum: int, frame: Any) -> None:
        if distributed.launcher_gone():  # torchrun's launcher died (PR_SET_PDEATHSIG): stop, write nothing more
            distributed.exit_orphaned()
        self._stop_signal = signum
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process the usual way

    @contextlib.contextmanager
    def _signal_handlers(self):
        import threading

        if not self.save_on_signal or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _due(self, every: Optional[int], epoch_ended: bool) -> bool:
        if every is not None:
            return self.global_step % every == 0
        return epoch_ended and self.max_epochs is not None

    def train(self) -> dict:
        """Run to ``max_steps`` / ``max_epochs`` (or until SIGTERM/SIGINT); returns a summary."""
        splits = [*self.train_splits, *self.valid_splits]
        self.bad_samples.prepare(splits, self.max_bad_fraction)
        path = None
        if self.resume_from is not None:
            path = ckpt.resolve(self.resume_from, self.output_dir / "checkpoints")
            if path is not None:
                self._restore(Path(path))
        if path is None:  # a fresh start lists only its own bad samples (a resume continues the list)
            self.bad_samples.start_fresh(splits)
        self.ctx.start_loggers(total_steps=self.total_steps, start_step=self.global_step)
        try:
            with self._signal_handlers():
                stopped = self._loop()
            summary = self._data_summary()
        finally:
            self.ctx.close_loggers()
        return {"global_step": self.global_step, "epoch": self.epoch, "stopped_by_signal": stopped,
                "best": self.best, "monitor": self.monitor, "skipped_steps": self.skipped_steps,
                "last_checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
                "losses": list(self.losses), **summary}

    def _data_summary(self) -> dict:
        """Skipped batches (summed over ranks) and bad samples per split; writes each split's bad-sample list."""
        counts = torch.tensor([float(self.skipped_batches)])
        if self.env.distributed:
            counts = distributed.all_reduce_tensor(counts.to(self.device), "sum").cpu()
        eval_skipped = distributed.gather_objects([self.eval_skipped_batches])
        splits = [*self.train_splits, *self.valid_splits]
        self.bad_samples.settle(splits)  # written, and the whole run's share checked
        bad = self.bad_samples.counts(splits)
        summary = {"skipped_batches": int(counts[0]), "empty_steps": self.empty_steps,
                   "eval_skipped_batches": {s: sum(d.get(s, 0) for d in eval_skipped) for s in self.valid_splits},
                   "bad_samples": bad}
        if summary["skipped_batches"] or any(bad.values()):
            self.ctx.say(f"data: {summary['skipped_batches']} training batch(es) skipped (no usable sample), "
                         f"{self.empty_steps} step(s) without data; bad samples per split: {bad}")
        return summary

    def _finished(self) -> bool:
        if self.max_steps is not None:
            return self.global_step >= self.max_steps
        return self.epoch >= self.max_epochs

    def _draw_step(self) -> tuple[list, StepPlan]:
        """The next step's micro-batches, checked, and the plan every rank agreed on."""
        micro, exhausted = self.data.draw()
        tokens = None
        if self.loss_normalization == "token":  # counted on the host, before the batches move
            tokens = [0 if b is None else self.task.supervised_tokens(self.raw_model, b) for b in micro]
        plan = plan_step(micro, exhausted, self.device, tokens)
        if plan.exhausted:
            return micro, plan
        for i, batch in enumerate(micro):
            if batch is None:
                self.skipped_batches += 1
                self.ctx.say(f"skipped micro-batch {self.batches_in_epoch + i} of epoch {self.epoch} on rank "
                             f"{self.env.rank}: the dataset skipped every sample in it")
            elif not self._reported:
                self._startup_report(batch)
                self._reported = True
            else:
                sanity.check_supervision(batch, f"step {self.global_step}, epoch {self.epoch}, batch "
                                                f"{self.batches_in_epoch + i} of the epoch")
        self.data.consumed(micro)
        if plan.stand_in is not None:
            plan.stand_in = move_to(plan.stand_in, self.device)
        return self.data.to_device(micro), plan

    def _loop(self) -> Optional[int]:
        """Epoch after epoch until the run is finished (None) or a stop signal came (its number)."""
        self._reported = False
        self.log_window.restart()
        while not self._finished():
            stopped = self._epoch()
            if stopped is not None:
                return stopped
        self._wrap_up()
        return None

    def _epoch(self) -> Optional[int]:
        """Steps until the epoch's data is over (the epoch then ends) or the run is finished; the number of a stop
        signal if one came."""
        self.data.start_epoch(self.epoch, self.batches_in_epoch)
        while not self._finished():
            step = self._next_step()
            if step is None:
                self._end_epoch()
                return None
            if self._take_step(*step):
                return self._stop_on_signal()
        return None

    def _next_step(self) -> Optional[tuple[list, StepPlan]]:
        """The next step's micro-batches and plan; None when the epoch's data is over."""
        if self.data.epoch_is_over(self.batches_in_epoch):
            return None
        with self.log_window.waiting_for_data():
            micro, plan = self._draw_step()
        if not plan.exhausted:
            return micro, plan
        # a stream's pass is over (on some rank): the epoch ends everywhere
        if self.batches_in_epoch == 0:
            raise DataError(f"the streaming training dataset yielded no complete step in epoch {self.epoch} "
                            f"(batch_size {self.batch_size} x grad_accum_steps {self.grad_accum_steps}); check its "
                            f"shards and set_epoch")
        return None

    def _take_step(self, micro: list, plan: StepPlan) -> bool:
        """Forward/backward, then one of: an optimizer step, a skipped step (non-finite loss) or an empty one (no
        rank had data); whether a stop signal arrived on any rank."""
        shares, standins_finite = self._train_step(micro, plan)
        self.data.fetch_ahead()  # the next batch's copy to the GPU overlaps this step's queued compute
        loss, finite, stop = self._agree(shares, standins_finite)
        self.batches_in_epoch += self.grad_accum_steps
        if loss is None:  # no rank had a micro-batch: nothing to learn from
            self.empty_steps += 1
            self.optimizer.zero_grad(set_to_none=True)
        elif not finite:
            self._skip_step(loss)
        else:
            self._optimizer_step(loss)
        return stop

    def _skip_step(self, loss: float) -> None:
        """A non-finite loss: its gradients are dropped, and the run stops or (nonfinite_loss: skip) goes on."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.nonfinite_loss == "raise":
            raise TrainingError(
                f"non-finite loss ({loss}) at step {self.global_step}, epoch {self.epoch}, "
                f"micro-batches {self.batches_in_epoch - self.grad_accum_steps}.."
                f"{self.batches_in_epoch - 1} of the epoch; no checkpoint was written for it "
                f"(set run.nonfinite_loss: skip to skip such steps)")
        self.skipped_steps += 1
        self.ctx.say(f"skipped step {self.global_step}: non-finite loss")

    def _optimizer_step(self, loss: float) -> None:
        grad_norm = self._apply_gradients()
        self.global_step += 1
        self.scheduler.set_step(self.global_step)
        self._report_step(loss, grad_norm)
        self._cadence(epoch_ended=False)

    def _report_step(self, loss: float, grad_norm: Optional[float]) -> None:
        """Live values after every step; a log line every ``log_every`` steps."""
        self.losses.append(loss)
        self.log_window.add(loss)
        lr = max(g["lr"] for g in self.optimizer.param_groups)
        self.ctx.progress(self.global_step, {"loss": loss, "lr": lr})
        if self.global_step % self.log_every:
            return
        window = self.log_window.close()
        self.ctx.log(self.global_step, {
            "loss": window["loss"], "lr": lr, "epoch": self.epoch,
            "samples_per_s": window["samples_per_s"], "data_wait": window["data_wait"],
            **({"skipped_batches": self.skipped_batches} if self.skipped_batches else {}),
            **({"grad_norm": grad_norm} if grad_norm is not None else {})})

    def _stop_on_signal(self) -> int:
        self.ctx.say(f"signal received: saving a checkpoint at step {self.global_step} and stopping")
        if self._last_saved_step != self.global_step:
            self.save_checkpoint()
        return self._stop_signal or -1

    def _end_epoch(self) -> None:
        self.epoch, self.batches_in_epoch = self.epoch + 1, 0
        self._cadence(epoch_ended=True)

    def _wrap_up(self) -> None:
        """The end of the run: a last evaluation and checkpoint unless the cadence just made them."""
        if self.valid_splits and self._last_eval_step != self.global_step:
            self._evaluate_and_track()
        if self._last_saved_step != self.global_step:
            self.save_checkpoint()

    def _cadence(self, epoch_ended: bool) -> None:
        if self.valid_splits and self._due(self.eval_every, epoch_ended) and self._last_eval_step != self.global_step:
            self._evaluate_and_track()
        if self._due(self.save_every, epoch_ended) and self._last_saved_step != self.global_step:
            self.save_checkpoint()
