"""Safe reading of checkpoint files: safetensors first, then ``torch.load(weights_only=True)``.

Plain pickles can run code when unpickled, so they are never loaded with ``weights_only=False``. LAVIS-style
checkpoints wrap the tensors as ``{"model": {...}, "optimizer": ...}``; the tensors are taken from there.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vlmkit.errors import DataError

TENSOR_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
WRAPPER_KEYS = ("model", "state_dict", "module")


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The file to read: ``path`` itself, or in a directory its single safetensors file, else its single
    .pth/.pt/.bin/.ckpt file (a sibling ``x.safetensors`` is preferred over ``x.pth``)."""
    path = Path(path)
    if path.is_file():
        sibling = path.with_suffix(".safetensors")
        return sibling if path.suffix != ".safetensors" and sibling.is_file() else path
    if not path.is_dir():
        raise DataError(f"checkpoint {path} does not exist")
    for suffixes in ((".safetensors",), TENSOR_SUFFIXES[1:]):
        found = sorted(p for p in path.iterdir() if p.suffix in suffixes)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise DataError(f"checkpoint directory {path} holds several files {[p.name for p in found]}; "
                            f"name the one to load (sharded checkpoints load through from_pretrained)")
    raise DataError(f"checkpoint directory {path} holds no {'/'.join(TENSOR_SUFFIXES)} file")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (or directory), on CPU, unwrapped from ``{"model": ...}``."""
    file = checkpoint_file(path)
    if file.suffix == ".safetensors":
        import safetensors.torch

        return safetensors.torch.load_file(str(file), device="cpu")
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError / RuntimeError with the offending global
        raise DataError(f"checkpoint {file} is not a plain tensor checkpoint and is not unpickled with code "
                        f"execution allowed ({type(err).__name__}: {str(err).splitlines()[0]}); convert it to "
                        f"safetensors from a trusted environment") from err
    for key in WRAPPER_KEYS:
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise DataError(f"checkpoint {file} does not hold a mapping of names to tensors "
                        f"(top-level keys: {sorted(data)[:10] if isinstance(data, dict) else type(data).__name__})")
    return data


def read_sharded(path: str) -> dict[str, torch.Tensor]:
    """A transformers checkpoint folder with a ``*.index.json`` (all shards), or a single file."""
    folder = Path(path)
    indexes = sorted(folder.glob("*.index.json")) if folder.is_dir() else []
    if not indexes:
        return read_state_dict(path)
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(json.loads(indexes[0].read_text())["weight_map"].values())):
        tensors.update(read_state_dict(folder / shard))
    return tensors
