"""Find the weight files of a transformers checkpoint and read its tensors one at a time.

Only headers are read up front (names, shapes, dtypes); tensor data is memory-mapped on demand and the mapping is
dropped regularly, so reading a whole checkpoint never keeps more than a bounded slice of it resident.
"""
from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors import SafetensorError, safe_open

from vlmkit.errors import DataError

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"
BIN_INDEX = "pytorch_model.bin.index.json"
BIN_SINGLE = "pytorch_model.bin"
# Looked for in this order, as transformers does: safetensors wins when both formats are present.
KNOWN_LAYOUTS = (
    (SAFETENSORS_INDEX, "safetensors"),
    (SAFETENSORS_SINGLE, "safetensors"),
    (BIN_INDEX, "bin"),
    (BIN_SINGLE, "bin"),
)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
DTYPE_CODES: dict[torch.dtype, str] = {dtype: code for code, dtype in SAFETENSORS_DTYPES.items()}

Format = Literal["safetensors", "bin"]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    shard: Path

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def locate_weights(path: Path) -> tuple[Path, Format, list[Path], dict[str, str] | None]:
    """(directory, format, shard files, index weight_map or None) of a checkpoint directory or weight file."""
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_file():
        return _locate_file(path)
    for file_name, fmt in KNOWN_LAYOUTS:
        if (path / file_name).is_file():
            return _locate_file(path / file_name, fmt)
    if any(path.glob("consolidated.*.pth")) or (path / "params.json").is_file():
        raise DataError(
            f"{path}: this is an original Meta LLaMA checkpoint (consolidated.*.pth / params.json); convert it to the "
            "transformers layout first (transformers' convert_llama_weights_to_hf.py) and pass the converted folder"
        )
    found = sorted(p.name for p in path.iterdir())
    raise DataError(
        f"{path}: no transformers weights found; expected one of {[name for name, _ in KNOWN_LAYOUTS]}, "
        f"found {found[:20]}"
    )


def _locate_file(file: Path, fmt: Format | None = None) -> tuple[Path, Format, list[Path], dict[str, str] | None]:
    directory = file.parent
    if file.name.endswith(".index.json"):
        fmt = fmt or ("safetensors" if file.name.startswith("model.safetensors") else "bin")
        weight_map = _read_json(file).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise DataError(f"{file}: an index json needs a non-empty 'weight_map' of tensor name -> shard file")
        shards = [directory / name for name in dict.fromkeys(weight_map.values())]
        missing = [str(s) for s in shards if not s.is_file()]
        if missing:
            raise DataError(f"{file}: shard files listed in the index are missing: {missing}")
        return directory, fmt, shards, weight_map
    if file.suffix == ".safetensors":
        return directory, "safetensors", [file], None
    if file.suffix in (".bin", ".pt", ".pth"):
        return directory, "bin", [file], None
    raise DataError(f"{file}: not a weight file; expected *.safetensors, *.bin, *.pt, *.pth or an *.index.json")


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{file}: cannot be read as JSON, the file is damaged ({err})") from err
    if not isinstance(data, dict):
        raise DataError(f"{file}: expected a JSON object, got {type(data).__name__}")
    return data


def _open_safetensors(shard: Path):
    try:
        return safe_open(str(shard), framework="pt")
    except (SafetensorError, OSError) as err:
        raise DataError(f"{shard}: not a readable safetensors file, it is damaged or truncated ({err})") from err


def _load_bin(shard: Path) -> dict[str, torch.Tensor]:
    # mmap: tensors stay on disk until touched; weights_only: a checkpoint can never run code on load.
    try:
        state = torch.load(shard, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError as err:
        raise DataError(
            f"{shard}: cannot be memory-mapped by torch.load ({err}); the file is damaged, or was saved before "
            "torch 1.6 and must be re-saved with a current torch.save first"
        ) from err
    except (OSError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise DataError(f"{shard}: cannot be read by torch.load, the file is damaged ({err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{shard}: expected a state dict of tensor name -> tensor")
    return state


class Checkpoint:
    """The tensors of one checkpoint, known by their headers and read lazily, one at a time.

    `keep_open_bytes` bounds how much of a shard may be mapped (and so resident) before the mapping is dropped and
    reopened; 0 reopens for every tensor, which is cheap for safetensors (a header parse) and slower for .bin (an
    unpickle of the shard's index of tensors).
    """

    def __init__(self, path: str | Path, keep_open_bytes: int = 0):
        self.path = Path(path)
        self.directory, self.format, self.shards, weight_map = locate_weights(self.path)
        self.keep_open_bytes = keep_open_bytes
        self.tensors: dict[str, TensorInfo] = {}
        for shard in self.shards:
            for info in self._read_header(shard):
                if info.name in self.tensors:
                    raise DataError(f"{self.path}: tensor {info.name!r} is stored twice, in {shard.name} and "
                                    f"{self.tensors[info.name].shard.name}")
                self.tensors[info.name] = info
        if weight_map is not None:
            self._check_index(weight_map)
        self._open_shard: Path | None = None
        self._handle = None
        self._bytes_since_open = 0

    def _read_header(self, shard: Path) -> list[TensorInfo]:
        if self.format == "safetensors":
            with _open_safetensors(shard) as handle:
                infos = []
                for name in handle.keys():
                    view = handle.get_slice(name)
                    code = view.get_dtype()
                    if code not in SAFETENSORS_DTYPES:
                        raise DataError(f"{shard}: tensor {name!r} has unsupported dtype {code}")
                    infos.append(TensorInfo(name, tuple(view.get_shape()), SAFETENSORS_DTYPES[code], shard))
                return infos
        state = _load_bin(shard)
        return [TensorInfo(name, tuple(t.shape), t.dtype, shard) for name, t in state.items()]

    def _check_index(self, weight_map: dict[str, str]) -> None:
        for name, shard_name in weight_map.items():
            info = self.tensors.get(name)
            if info is None or info.shard.name != shard_name:
                raise DataError(f"{self.path}: the index puts tensor {name!r} in {shard_name}, which does not hold it")
        unindexed = sorted(set(self.tensors) - set(weight_map))
        if unindexed:
            raise DataError(f"{self.path}: tensors stored in shards but missing from the index: {unindexed[:10]}")

    def describe(self) -> str:
        dtypes = sorted({str(info.dtype).removeprefix("torch.") for info in self.tensors.values()})
        return (f"{self.path} ({self.format}, {len(self.shards)} shard{'s' * (len(self.shards) > 1)}, "
                f"{len(self.tensors)} tensors, {'/'.join(dtypes)})")

    @property
    def largest_shard_bytes(self) -> int:
        return max(shard.stat().st_size for shard in self.shards)

    def read(self, name: str, start: int | None = None, stop: int | None = None) -> torch.Tensor:
        """Rows start:stop of tensor `name` (all of it by default); possibly a view of the mapped file, valid
        while the caller holds it. Reading in row ranges keeps a huge tensor from being mapped in whole."""
        info = self.tensors[name]
        if self._open_shard != info.shard:
            self.close()
            self._handle = _open_safetensors(info.shard) if self.format == "safetensors" \
                else _load_bin(info.shard)
            self._open_shard = info.shard
        whole = start is None and stop is None
        try:
            if self.format == "safetensors":
                tensor = self._handle.get_tensor(name) if whole else self._handle.get_slice(name)[start:stop]
            else:
                tensor = self._handle[name] if whole else self._handle[name][start:stop]
        except (SafetensorError, RuntimeError, OSError, ValueError, KeyError) as err:
            self.close()
            raise DataError(f"{info.shard}: cannot read tensor {name!r}, the file is damaged or changed since it "
                            f"was opened ({type(err).__name__}: {err})") from err
        self._bytes_since_open += tensor.numel() * tensor.element_size()
        if self._bytes_since_open >= self.keep_open_bytes:
            self.close()
        return tensor

    def close(self) -> None:
        """Drop the mapping; its pages leave memory once the tensors read from it are released too."""
        self._handle = None
        self._open_shard = None
        self._bytes_since_open = 0

    def side_files(self) -> list[Path]:
        """Files next to the weights that are not weights: config, tokenizer, generation config, ..."""
        skip = {SAFETENSORS_INDEX, BIN_INDEX, "SHA256SUMS"}
        return sorted(p for p in self.directory.iterdir()
                      if p.is_file() and p.name not in skip and not p.name.endswith(WEIGHT_SUFFIXES)
                      and not p.name.startswith("."))

    def config(self) -> dict | None:
        config_file = self.directory / "config.json"
        return _read_json(config_file) if config_file.is_file() else None
