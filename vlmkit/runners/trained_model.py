"""Evaluate exactly the trained model: weight sources recorded at training, checked before evaluation builds.

At start-up the trainer records, once per run, every weight source of its model (``record_sources``): each
component's ``pretrained`` and each ``model.init_weights`` entry (path, layout, targets), what the loaders marked
(``vlmkit.models.weight_sources``), the content hash (``provenance``'s hashing and cache: a file's sha256; a
folder's files, each hashed) and how many frozen / trainable parameters each one filled. Every checkpoint's
manifest carries the record under ``weight_sources``.

Before an evaluation builds its model (``check_before_build``, called by ``assemble``), and again when the
evaluator loads the checkpoint (``check_trained_model``), the evaluation's model config is compared with the
checkpoint's, ``init_weights`` and ``pretrained`` paths included, and every recorded source is re-hashed. Dropping
an ``init_weights`` entry is accepted only when it filled no frozen parameter at training (the checkpoint replaces
every trainable one). A difference, a missing or a changed weight file is refused naming it; the overrides
(``allow_config_mismatch``, ``ignore_model_keys``, ``allow_changed_weights``) warn and are recorded.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from torch import nn

from vlmkit.config import RESOLVED_NAME, to_dict
from vlmkit.errors import ConfigError
from vlmkit.models.weight_sources import weight_source
from vlmkit.registry import RUNNERS, Registry
from vlmkit.runners import checkpoint as ckpt
from vlmkit.runners import provenance
from vlmkit.runners.provenance import flatten

FIX = ("Drop the evaluation config's model section to evaluate the checkpoint's own model, or make it equal to "
       "the checkpoint's")


# ---------------------------------------------------------------------------------------------- hashing
def content_of(path: str) -> dict[str, Any]:
    """sha256 of a weight source: a file; a vlmkit run (its latest tensors); a folder (each file, and one hash)."""
    if not os.path.exists(path):
        return {"sha256": None, "note": "not a local file or folder (a hub name?): not hashed"}
    folder = Path(path)
    if folder.is_dir() and provenance.vlmkit_weights_file(folder) is None:
        listing = provenance.folder_listing(folder)
        return {"sha256": provenance.json_sha256(listing), "files": dict(listing)}
    digest = provenance.path_digest(path)
    return {"sha256": digest["sha256"], **({"file": digest["file"]} if "file" in digest else {})}


# ---------------------------------------------------------------------------------------------- training side
def _split_source(source: str) -> tuple[str, str]:
    """A loader's mark "<path> (<layout>)" as (path, layout)."""
    path, _, layout = source.rpartition(" (")
    return (path, layout[:-1]) if path and layout.endswith(")") else (source, "")


def record_sources(model_config: Optional[Mapping], model: nn.Module) -> list[dict[str, Any]]:
    """Every weight source of a built model: path, layout (targets for init_weights), the config keys naming it,
    the frozen / trainable parameters it filled, its content hash. Hashing reads every file once per process."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for param in model.parameters():
        source = weight_source(param)
        if source is not None:
            entry = counts.setdefault(_split_source(source), {"frozen_parameters": 0, "trainable_parameters": 0})
            entry["trainable_parameters" if param.requires_grad else "frozen_parameters"] += param.numel()
    records: dict[tuple, dict[str, Any]] = {}

    def add(path: str, layout: str, key: str, targets: Optional[dict] = None) -> None:
        ident = (path, layout, repr(sorted((targets or {}).items())))
        record = records.setdefault(ident, {"path": path, "layout": layout, "config_keys": [],
                                            **({"targets": dict(targets)} if targets else {}),
                                            **counts.get((path, layout), {"frozen_parameters": 0,
                                                                          "trainable_parameters": 0})})
        if key:
            record["config_keys"].append(key)

    config = dict(model_config or {})
    for i, entry in enumerate(config.get("init_weights") or []):
        add(str(entry["path"]), str(entry.get("layout", "vlmkit")), f"model.init_weights[{i}]", entry.get("targets"))
    for key, value in flatten({k: v for k, v in config.items() if k != "init_weights"}, "model").items():
        if key.endswith(".pretrained") and isinstance(value, str) and value:
            layouts = [layout for path, layout in counts if path == value] or [""]
            for layout in layouts:
                add(value, layout, key)
    for path, layout in counts:  # loaded from a path the config does not name (a constructor default)
        if not any(r["path"] == path and r["layout"] == layout for r in records.values()):
            add(path, layout, "")
    return [{**record, **content_of(record["path"])} for record in records.values()]


# ---------------------------------------------------------------------------------------------- evaluation side
def model_config_diff(saved: Mapping, current: Mapping, ignore: list[str] = ()) -> list[str]:
    """Lines naming every key whose value differs between two model sections (keys under ``ignore`` skipped)."""
    lines = []
    for key, a, b in provenance.leaf_differences(saved, current, "model"):
        if any(key == f"model.{p}" or key.startswith((f"model.{p}.", f"model.{p}[")) for p in ignore):
            continue
        if a is provenance.ABSENT:
            lines.append(f"  {key}: not in the checkpoint's config, {b!r} in the evaluation config")
        elif b is provenance.ABSENT:
            lines.append(f"  {key}: {a!r} in the checkpoint's config, not in the evaluation config")
        else:
            lines.append(f"  {key}: checkpoint {a!r} vs evaluation {b!r}")
    return lines


def _fills_frozen(entry: Mapping, records: Optional[list[dict]]) -> Optional[int]:
    """Frozen parameters an init_weights entry filled at training (None when the checkpoint did not record it)."""
    if records is None:
        return None
    layout, targets = str(entry.get("layout", "vlmkit")), dict(entry.get("targets") or {})
    for record in records:
        if record["path"] == str(entry.get("path")) and record["layout"] == layout and \
                record.get("targets", {}) == targets:
            return record["frozen_parameters"]
    return None


def config_differences(saved: Mapping, current: Mapping, records: Optional[list[dict]],
                       ignore: list[str] = ()) -> tuple[list[str], list[str]]:
    """(differences that change the evaluated model, notes on accepted ones). An ``init_weights`` entry of the
    training the evaluation drops is harmless when it filled no frozen parameter (the checkpoint replaces the
    trainable ones); an entry training did not have is always a difference."""
    lines = model_config_diff(saved, current, ignore)
    init_lines = [line for line in lines if line.startswith(("  model.init_weights:", "  model.init_weights["))]
    if not init_lines:
        return lines, []
    trained, evaluated = list(saved.get("init_weights") or []), list(current.get("init_weights") or [])
    dropped = [entry for entry in trained if entry not in evaluated]
    filled = {i: _fills_frozen(entry, records) for i, entry in enumerate(dropped)}
    kept_in_order = evaluated == [entry for entry in trained if entry in evaluated]  # loads overwrite in order
    if kept_in_order and all(n == 0 for n in filled.values()):
        rest = [line for line in lines if line not in init_lines]
        return rest, [f"model.init_weights: {entry['path']} is not loaded; at training it filled trainable "
                      f"parameters only, which the checkpoint replaces" for entry in dropped]
    why = [f"  model.init_weights: {entry['path']} ({entry.get('layout', 'vlmkit')}) filled "
           + (f"{n:,} frozen parameters at training" if n is not None else "parameters the checkpoint did not "
              "record (a checkpoint without weight_sources)") + "; without it they would differ"
           for entry, n in zip(dropped, filled.values()) if n != 0]
    return lines + why, []


def changed_sources(records: list[dict]) -> tuple[list[str], list[dict]]:
    """(lines naming every missing or changed source file, a status per recorded source). An init_weights source
    that filled only trainable parameters is not checked: the checkpoint replaces all it wrote."""
    problems, statuses = [], []
    for record in records:
        status = {"path": record["path"], "layout": record["layout"], "sha256": record.get("sha256")}
        statuses.append(status)
        if record.get("sha256") is None:
            status["status"] = "not hashed (not a local file or folder at training)"
            continue
        if record["frozen_parameters"] == 0 and record["config_keys"] and all(
                key.startswith("model.init_weights[") for key in record["config_keys"]):
            status["status"] = "not checked: it filled trainable parameters only, which the checkpoint replaces"
            continue
        if not os.path.exists(record["path"]):
            problems.append(f"  {record['path']}: missing (sha256 {record['sha256']} at training)")
            status["status"] = "missing"
            continue
        now = content_of(record["path"])
        status["status"] = "verified" if now["sha256"] == record["sha256"] else "changed"
        if now["sha256"] == record["sha256"]:
            continue
        if "files" in record and "files" in now:  # a folder: name each file
            old, new = record["files"], now["files"]
            for name in sorted(set(old) | set(new)):
                if old.get(name) != new.get(name):
                    problems.append(f"  {Path(record['path']) / name}: sha256 {old.get(name) or '(absent)'} at "
                                    f"training, now {new.get(name) or '(absent)'}")
        else:
            problems.append(f"  {now.get('file', record.get('file', record['path']))}: sha256 {record['sha256']} at "
                            f"training, now {now['sha256']}")
    return problems, statuses


def saved_run_config(path: Path, manifest: dict) -> Optional[dict]:
    """The resolved config a checkpoint was trained with: its manifest's, else the run directory's file."""
    if manifest.get("config"):
        return manifest["config"]
    for candidate in (path.parent.parent / RESOLVED_NAME, path.parent / RESOLVED_NAME):
        if candidate.is_file():
            return OmegaConf.to_container(OmegaConf.load(candidate), resolve=True)
    return None


def check_trained_model(path: Path, manifest: dict, current: Optional[Mapping], *, allow_config_mismatch: bool,
                        ignore: list[str], allow_changed_weights: bool,
                        say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Refuse (ConfigError) an evaluation model that differs from the checkpoint's, or recorded weight files that
    changed since training; returns what was checked (for results.json)."""
    saved = saved_run_config(path, manifest)
    records = manifest.get("weight_sources")
    report: dict[str, Any] = {"checkpoint": str(path), "config_differences": [], "notes": [],
                              "allow_changed_weights": allow_changed_weights, "changed": [], "sources": None}
    if saved is None or "model" not in saved or current is None:
        problem = (f"cannot compare model configs ({path} has no saved config)" if saved is None or
                   "model" not in saved else "the evaluator got no resolved config to compare with the checkpoint's")
        if not allow_config_mismatch:
            raise ConfigError("evaluation.checkpoint", f"{problem}; set evaluation.allow_config_mismatch: true to "
                                                       f"evaluate anyway")
        say(f"warning: {problem}")
        report["config_differences"] = [problem]
    else:
        differences, notes = config_differences(saved["model"], current, records, ignore)
        report["config_differences"], report["notes"] = differences, notes
        if differences and not allow_config_mismatch:
            raise ConfigError("evaluation.checkpoint",
                              f"the model config of {path} differs from the evaluation's, so this would evaluate a "
                              f"different model than was trained:\n" + "\n".join(differences) + f"\n{FIX}; or list "
                              f"the keys in evaluation.ignore_model_keys, or set evaluation.allow_config_mismatch: "
                              f"true")
        if differences:
            say("warning: model config differs from the checkpoint's:\n" + "\n".join(differences))
        for note in notes:
            say(f"note: {note}")
    if records is None:
        say(f"note: {path} records no weight sources (saved by an older vlmkit); weight files are not verified")
        return report
    problems, report["sources"] = changed_sources(records)
    report["changed"] = problems
    if problems and not allow_changed_weights:
        raise ConfigError("evaluation.allow_changed_weights",
                          f"weight files the checkpoint {path} was trained from are missing or changed since, so "
                          f"the frozen weights evaluated would not be the trained ones:\n" + "\n".join(problems) +
                          "\nRestore them, or set evaluation.allow_changed_weights: true to evaluate anyway "
                          "(recorded in results.json)")
    if problems:
        say("warning: evaluating with changed weight files (allow_changed_weights):\n" + "\n".join(problems))
    return report


def load_trained(model: nn.Module, spec: str, model_config: Optional[Mapping], *, allow_config_mismatch: bool = False,
                 ignore: list[str] = (), allow_changed_weights: bool = False,
                 say: Callable[[str], None] = lambda text: None) -> tuple[Path, dict[str, Any]]:
    """How a built model gets its trained weights, for the evaluator and ``vlmkit.load`` alike: the checkpoint
    ``spec`` names (a checkpoint, a run's checkpoints folder or the run), checked (``check_trained_model``), then
    its trainable tensors loaded strictly. Returns (the checkpoint, what was checked)."""
    path = ckpt.resolve(str(spec), str(spec), key="evaluation.checkpoint")
    manifest = ckpt.read_manifest(path)
    report = check_trained_model(path, manifest, model_config, allow_config_mismatch=allow_config_mismatch,
                                 ignore=list(ignore), allow_changed_weights=allow_changed_weights, say=say)
    ckpt.load_trainable(model, path, strict=True)
    say(f"loaded {len(manifest['tensors'])} trainable tensors from {path}")
    return path, report


def locate(spec: str) -> Path:
    """The checkpoint ``evaluation.checkpoint`` names (a checkpoint, a run's checkpoints folder or the run);
    its files are verified when the evaluator loads it."""
    path = Path(spec)
    for candidate in (path, path / "checkpoints"):
        if (candidate / ckpt.MANIFEST).is_file():
            return candidate
        found = ckpt.latest(candidate)
        if found is not None:
            return found
    return ckpt.resolve(spec, spec, key="evaluation.checkpoint")  # raises the usual error, naming what is missing


def check_before_build(cfg: DictConfig, section: str = "evaluation") -> Optional[dict[str, Any]]:
    """For an evaluation runner with a ``checkpoint`` (the evaluator), everything ``check_trained_model`` checks,
    before the model is built; None when there is nothing to check."""
    runner = cfg.get(section)
    if not isinstance(runner, DictConfig) or not runner.get("checkpoint"):
        return None
    params = RUNNERS.parameters(Registry.name_of(runner, section))
    if "checkpoint" not in params:
        return None

    def setting(key: str) -> Any:
        return runner.get(key, params[key].default if key in params else None)

    path = locate(str(runner.checkpoint))
    return check_trained_model(path, ckpt.read_manifest(path), to_dict(cfg.model) if cfg.get("model") else None,
                               allow_config_mismatch=bool(setting("allow_config_mismatch")),
                               ignore=list(setting("ignore_model_keys") or []),
                               allow_changed_weights=bool(setting("allow_changed_weights")))
