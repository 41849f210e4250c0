"""Checkpoints: trainable tensors (safetensors) + manifest + trainer state, written atomically.

A checkpoint is a directory::

    model.safetensors     trainable tensors only (frozen weights come from the model's own source)
    manifest.json         names, shapes and dtypes of those tensors, progress, metrics, resolved config
    trainer_state.pt      optimizer, scheduler, grad scaler, progress (read with weights_only=True)
    rng_rank<R>.pt        every RNG of rank R

It is assembled in a hidden temporary directory and renamed into place; the ``latest`` pointer file is
replaced (atomically) only after that, so a crash at any moment leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from vlmkit.errors import VlmkitError
from vlmkit.runners import distributed

FORMAT = "vlmkit-checkpoint"
VERSION = 1
WEIGHTS = "model.safetensors"
MANIFEST = "manifest.json"
TRAINER_STATE = "trainer_state.pt"
LATEST = "latest"
STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(VlmkitError, RuntimeError):
    """A checkpoint that is missing, incomplete, or does not fit the model."""


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
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{manifest_path}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def load_tensors(path: str | os.PathLike, manifest: dict | None = None) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, checked against its own manifest (a truncated or swapped file is caught)."""
    path = Path(path)
    manifest = manifest or read_manifest(path)
    tensors = safetensors.torch.load_file(str(path / WEIGHTS))
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


def resolve(spec: str, checkpoints_dir: str | os.PathLike) -> Path | None:
    """A checkpoint directory from ``resume_from``: 'auto' (latest if any), 'latest' (must exist), or a path.

    A path may name a checkpoint directory, a run's ``checkpoints`` directory or the run's output directory.
    """
    checkpoints_dir = Path(checkpoints_dir)
    if spec in ("auto", "latest"):
        found = latest(checkpoints_dir)
        if found is None and spec == "latest":
            raise CheckpointError(f"resume_from: latest, but there is no checkpoint in {checkpoints_dir} "
                                  f"(use 'auto' to start fresh when there is none)")
        return found
    path = Path(spec)
    for candidate in (path, path / "checkpoints"):
        if (candidate / MANIFEST).is_file():
            return candidate
        if (candidate / LATEST).is_file():
            found = latest(candidate)
            if found is not None:
                return found
    raise CheckpointError(f"resume_from: {spec} is neither a checkpoint directory (with {MANIFEST}) nor a "
                          f"directory with a '{LATEST}' pointer")


def latest(checkpoints_dir: str | os.PathLike) -> Path | None:
    pointer = Path(checkpoints_dir) / LATEST
    if not pointer.is_file():
        return None
    target = Path(checkpoints_dir) / pointer.read_text().strip()
    read_manifest(target)  # the pointer is only written after its target is complete; check anyway
    return target


class CheckpointWriter:
    """Writes checkpoints of one run (a collective: every rank calls ``save``)."""

    def __init__(self, checkpoints_dir: str | os.PathLike, env: distributed.DistEnv, keep_last: int | None):
        self.root = Path(checkpoints_dir)
        self.env = env
        self.keep_last = keep_last

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
            _write_json(tmp / MANIFEST, {"format": FORMAT, "version": VERSION, "created": time.time(),
                                         "world_size": self.env.world_size, "tensors": tensor_specs(tensors),
                                         **manifest_extra})
            _fsync_dir(tmp)
        distributed.barrier()
        final = self.root / name
        if self.env.is_main:
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
        for leftover in self.root.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if self.keep_last is None:
            return
        pointer = self.root / LATEST
        current = pointer.read_text().strip() if pointer.is_file() else None
        steps = sorted((int(m.group(1)), p) for p in self.root.iterdir() if (m := STEP_DIR.match(p.name)))
        for _, path in steps[:-self.keep_last] if self.keep_last > 0 else steps:
            if path.name != current:
                shutil.rmtree(path)


def load_trainer_state(path: Path) -> dict:
    return torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=True)


def load_rng_state(path: Path, rank: int) -> dict | None:
    file = path / f"rng_rank{rank}.pt"
    return torch.load(file, map_location="cpu", weights_only=True) if file.is_file() else None
