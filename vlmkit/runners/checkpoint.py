"""Checkpoints: trainable tensors (safetensors) + manifest + trainer state, written atomically.

A checkpoint is a directory::

    model.safetensors     trainable tensors only (frozen weights come from the model's own source)
    manifest.json         names, shapes and dtypes of those tensors, size and sha256 of every other file,
                          progress, metrics, resolved config, and the weight sources the model was built
                          from with their hashes (``weight_sources``, see ``trained_model``)
    trainer_state.pt      optimizer, scheduler, grad scaler, progress (read with weights_only=True)
    rng_rank<R>.pt        every RNG of rank R

It is assembled in a hidden temporary directory and renamed into place; the ``latest`` pointer file is
replaced (atomically) only after that, so a crash at any moment leaves the previous checkpoint intact.
``resolve`` verifies every file against the manifest before a resume or an evaluation reads it; ``auto`` falls
back to the newest intact checkpoint, warning what it skipped and why.  Leftovers of an interrupted save
(``.tmp-*``, ``.old-*``) are cleared when the next run starts and after every save.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from vlmkit.errors import VlmkitError
from vlmkit.runners import distributed
from vlmkit.tools.checksums import sha256_of

FORMAT = "vlmkit-checkpoint"
VERSION = 2  # 2: manifest "files" holds each file's size and sha256
WEIGHTS = "model.safetensors"
MANIFEST = "manifest.json"
TRAINER_STATE = "trainer_state.pt"
LATEST = "latest"
STEP_DIR = re.compile(r"^step_(\d+)$")
# what torch.load / safetensors raise for a damaged file (truncated zip, bad header, bad pickle opcode)
_READ_ERRORS = (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError, SafetensorError)


class CheckpointError(VlmkitError, RuntimeError):
    """A checkpoint that is missing, incomplete, damaged, or does not fit the model."""


class CheckpointSkippedWarning(UserWarning):
    """``resume_from: auto`` passed over a damaged checkpoint for an older intact one."""


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def tensor_specs(tensors: Mapping[str, torch.Tensor]) -> dict[str, dict]:
    return {name: {"shape": list(t.shape), "dtype": _dtype_name(t.dtype)} for name, t in sorted(tensors.items())}


def manifest_diff(saved: Mapping[str, dict], expected: Mapping[str, dict], check_missing: bool = True) -> list[str]:
    """Readable lines for every missing, unexpected or shape/dtype-mismatched tensor (empty when they fit)."""
    lines = []
    if check_missing:
        lines += [f"  missing (in the model, not in the checkpoint): {n} {expected[n]['shape']}"
                  for n in sorted(set(expected) - set(saved))]
    lines += [f"  unexpected (in the checkpoint, not trainable in the model): {n} {saved[n]['shape']}"
              for n in sorted(set(saved) - set(expected))]
    for name in sorted(set(saved) & set(expected)):
        s, e = saved[name], expected[name]
        if s["shape"] != e["shape"]:
            lines.append(f"  shape mismatch: {name}: checkpoint {s['shape']} vs model {e['shape']}")
        elif s["dtype"] != e["dtype"]:
            lines.append(f"  dtype differs: {name}: checkpoint {s['dtype']} vs model {e['dtype']}")
    return lines


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.flush()
        os.fsync(f.fileno())


def _torch_save(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def read_manifest(path: str | os.PathLike) -> dict:
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{path} is not a complete vlmkit checkpoint: {MANIFEST} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{manifest_path}: cannot be read as JSON, the file is damaged ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(f"{manifest_path}: format is {found!r}, expected {FORMAT!r}")
    return manifest


def file_records(directory: Path) -> dict[str, dict]:
    """Size and sha256 of every file of a checkpoint directory but the manifest."""
    return {p.name: {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
            for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST}


def verify_files(path: str | os.PathLike, manifest: dict | None = None) -> dict:
    """Check every file the manifest lists: present, same size, same sha256; returns the manifest.

    Raises CheckpointError naming each file at fault.  Checkpoints written before version 2 list no files
    and are only checked by their tensor shapes when loaded."""
    path = Path(path)
    manifest = manifest or read_manifest(path)
    problems = []
    for name, record in (manifest.get("files") or {}).items():
        file = path / name
        if not file.is_file():
            problems.append(f"  {file}: missing")
        elif (size := file.stat().st_size) != record["bytes"]:
            problems.append(f"  {file}: {size} bytes, the manifest says {record['bytes']} (truncated or overwritten)")
        elif sha256_of(file) != record["sha256"]:
            problems.append(f"  {file}: sha256 differs from the manifest's (the file changed after it was saved)")
    if problems:
        raise CheckpointError(f"checkpoint {path} is damaged:\n" + "\n".join(problems))
    return manifest


def load_tensors(path: str | os.PathLike, manifest: dict | None = None) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, checked against its own manifest (a truncated or swapped file is caught)."""
    path = Path(path)
    manifest = manifest or read_manifest(path)
    if not (path / WEIGHTS).is_file():
        raise CheckpointError(f"{path / WEIGHTS}: missing")
    try:
        tensors = safetensors.torch.load_file(str(path / WEIGHTS))
    except _READ_ERRORS as err:
        raise CheckpointError(f"{path / WEIGHTS}: not a readable safetensors file, it is damaged ({err})") from err
    diff = manifest_diff(manifest["tensors"], tensor_specs(tensors))
    if diff:
        raise CheckpointError(f"{path / WEIGHTS} does not match its manifest:\n" + "\n".join(diff))
    return tensors


def load_trainable(model: torch.nn.Module, path: str | os.PathLike, strict: bool = True) -> dict:
    """Load a checkpoint's tensors into a plain (unwrapped) model; returns the manifest.

    Strict: every checkpoint tensor must exist in the model with the same shape (the model may have more
    parameters: the frozen ones come from their pretrained source).
    """
    manifest = read_manifest(path)
    tensors = load_tensors(path, manifest)
    params = dict(model.named_parameters())
    diff = manifest_diff(manifest["tensors"], tensor_specs(params), check_missing=False)
    hard = [line for line in diff if "dtype differs" not in line]
    if hard and strict:
        raise CheckpointError(f"checkpoint {path} does not fit the model:\n" + "\n".join(hard))
    with torch.no_grad():
        for name, tensor in tensors.items():
            if name in params and params[name].shape == tensor.shape:
                params[name].copy_(tensor.to(device=params[name].device, dtype=params[name].dtype))
    return manifest


def resolve(spec: str, checkpoints_dir: str | os.PathLike, key: str = "resume_from") -> Path | None:
    """A verified checkpoint directory from ``resume_from``: 'auto' (the newest intact one, None when there is
    no checkpoint), 'latest' (the pointer's target, which must be intact), or a path. ``key``: the setting or
    argument ``spec`` came from, which the errors name (``evaluation.checkpoint``, a command's ``run``).

    A path may name a checkpoint directory, a run's ``checkpoints`` directory or the run's output directory.
    Every file is checked against the manifest (``verify_files``); a damaged one raises naming the file, except
    under 'auto', which warns (``CheckpointSkippedWarning``) and takes the next older intact checkpoint.
    """
    checkpoints_dir = Path(checkpoints_dir)
    if spec == "auto":
        return newest_intact(checkpoints_dir)
    if spec == "latest":
        found = latest(checkpoints_dir)
        if found is None:
            raise CheckpointError(f"{key}: latest, but there is no checkpoint in {checkpoints_dir} "
                                  f"(use 'auto' to start fresh when there is none)")
        verify_files(found)
        return found
    path = Path(spec)
    if not path.exists():
        raise CheckpointError(f"{key}: {spec} does not exist; give a training run directory, its checkpoints "
                              f"folder or one checkpoint")
    for candidate in (path, path / "checkpoints"):
        if (candidate / MANIFEST).is_file():
            verify_files(candidate)
            return candidate
        if (candidate / LATEST).is_file():
            found = latest(candidate)
            if found is not None:
                verify_files(found)
                return found
    raise CheckpointError(f"{key}: {spec} is neither a checkpoint directory (with {MANIFEST}) nor a "
                          f"directory with a '{LATEST}' pointer")


def newest_intact(checkpoints_dir: Path) -> Path | None:
    """The pointer's target if intact, else the newest intact ``step_*``; warns for each one passed over."""
    candidates, skipped = [], []
    try:
        target = latest(checkpoints_dir)
        if target is not None:
            candidates.append(target)
    except CheckpointError as err:
        skipped.append(str(err))
    if checkpoints_dir.is_dir():
        steps = sorted(((int(m.group(1)), p) for p in checkpoints_dir.iterdir() if (m := STEP_DIR.match(p.name))),
                       reverse=True)
        candidates += [p for _, p in steps if p not in candidates]
    for candidate in candidates:
        try:
            verify_files(candidate)
        except CheckpointError as err:
            skipped.append(str(err))
            continue
        if skipped:
            warnings.warn(f"resume_from: auto resumes from {candidate}, the newest intact checkpoint; it skipped "
                          f"{len(skipped)} damaged one(s):\n" + "\n".join(skipped), CheckpointSkippedWarning,
                          stacklevel=3)
        return candidate
    if skipped:
        raise CheckpointError(f"resume_from: auto found checkpoints in {checkpoints_dir} but none is intact; "
                              f"starting fresh would overwrite them, so fix or move them:\n" + "\n".join(skipped))
    return None


def latest(checkpoints_dir: str | os.PathLike) -> Path | None:
    """The checkpoint the ``latest`` pointer names (None without a pointer); its manifest must be readable."""
    pointer = Path(checkpoints_dir) / LATEST
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{pointer}: the pointer file cannot be read ({err})") from err
    example = f"a checkpoint directory name such as {step_dir_name(1)}"
    if not name:
        raise CheckpointError(f"{pointer} is empty; it should hold {example} (damaged on disk, or edited)")
    target = Path(checkpoints_dir) / name
    if "/" in name or os.sep in name or not target.is_dir():
        raise CheckpointError(f"{pointer} names {name[:80]!r}, which is not a directory in {checkpoints_dir}; it "
                              f"should hold {example}")
    read_manifest(target)  # the pointer is only written after its target is complete; check anyway
    return target


class CheckpointWriter:
    """Writes checkpoints of one run (a collective: every rank calls ``save``)."""

    def __init__(self, checkpoints_dir: str | os.PathLike, env: distributed.DistEnv, keep_last: int | None):
        self.root = Path(checkpoints_dir)
        self.env = env
        self.keep_last = keep_last
        if env.is_main and self.root.is_dir():  # a run starts: clear what an interrupted save left behind
            clear_leftovers(self.root)

    def save(self, name: str, *, tensors: dict[str, torch.Tensor], trainer_state: dict, rng_state: dict,
             manifest_extra: dict, update_latest: bool = True) -> Path:
        tmp = None
        if self.env.is_main:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
        tmp = Path(distributed.broadcast_object(str(tmp) if tmp else None))
        _torch_save(rng_state, tmp / f"rng_rank{self.env.rank}.pt")
        if self.env.is_main:
            safetensors.torch.save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS),
                                        metadata={"format": "pt"})
            _torch_save(trainer_state, tmp / TRAINER_STATE)
        distributed.barrier()  # every rank's RNG file is written: the manifest can hash them all
        final = self.root / name
        if self.env.is_main:
            _write_json(tmp / MANIFEST, {"format": FORMAT, "version": VERSION, "created": time.time(),
                                         "world_size": self.env.world_size, "tensors": tensor_specs(tensors),
                                         "files": file_records(tmp), **manifest_extra})
            _fsync_dir(tmp)
            self._publish(tmp, final, update_latest)
        distributed.barrier()
        return final

    def _publish(self, tmp: Path, final: Path, update_latest: bool) -> None:
        old = None
        if final.exists():  # re-saving a name ('best', or the same step twice): swap, then delete the old one
            old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:8]}")
            final.rename(old)
        tmp.rename(final)
        _fsync_dir(self.root)
        if update_latest:
            pointer_tmp = self.root / f".{LATEST}.tmp"
            pointer_tmp.write_text(final.name)
            os.replace(pointer_tmp, self.root / LATEST)
            _fsync_dir(self.root)
        if old is not None:
            shutil.rmtree(old)
        self._prune()

    def _prune(self) -> None:
        """Delete step checkpoints beyond keep_last, never the one 'latest' points to; clear crash leftovers."""
        clear_leftovers(self.root)
        if self.keep_last is None:
            return
        pointer = self.root / LATEST
        current = pointer.read_text().strip() if pointer.is_file() else None
        steps = sorted((int(m.group(1)), p) for p in self.root.iterdir() if (m := STEP_DIR.match(p.name)))
        for _, path in steps[:-self.keep_last] if self.keep_last > 0 else steps:
            if path.name != current:
                shutil.rmtree(path)


def clear_leftovers(root: Path) -> None:
    """Remove unpublished ``.tmp-*`` saves and ``.old-*`` copies; an ``.old-<name>-*`` whose ``<name>`` is gone
    (a crash between the two renames of a re-save) is the only copy, so it is moved back instead."""
    for old in sorted(root.glob(".old-*")):
        name = old.name.removeprefix(".old-").rsplit("-", 1)[0]
        if not (root / name).exists() and (old / MANIFEST).is_file():
            old.rename(root / name)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in [*root.glob(".tmp-*"), root / f".{LATEST}.tmp"]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover.exists():
            leftover.unlink()


def _torch_load(file: Path) -> Any:
    if not file.is_file():
        raise CheckpointError(f"{file}: missing")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except _READ_ERRORS as err:
        raise CheckpointError(f"{file}: cannot be read by torch.load, the file is damaged ({err})") from err


def load_trainer_state(path: Path) -> dict:
    return _torch_load(path / TRAINER_STATE)


def load_rng_state(path: Path, rank: int) -> dict | None:
    file = path / f"rng_rank{rank}.pt"
    return _torch_load(file) if file.is_file() else None
